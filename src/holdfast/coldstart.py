"""`holdfast coldstart MODULE:ATTR`: where the app's cold start goes.

The app is loaded in a fresh interpreter, the way Lambda's init loads it (``holdfast run``'s
loader: import the module, find the attribute, wrap it in an Adapter), under ``-X importtime``.
The init time is split into the interpreter's own start, the imports — holdfast's, the standard
library's, other libraries' (the framework) and the app's own modules — and what the startup
after the imports spent (the Adapter, and lifespan startup when it runs at init). The slowest
imports are listed by their cumulative time, and the libraries by the time their own modules
took. ``--save`` keeps the profile as JSON; ``--compare`` prints the difference with a saved one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from holdfast.errors import HoldfastError

CATEGORIES = ("holdfast", "stdlib", "libraries", "app")
_LABELS = {
    "holdfast": "holdfast",
    "stdlib": "standard library",
    "libraries": "framework & libraries",
    "app": "your modules",
}
_IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")
_CHILD_MARK = "holdfast-coldstart:"


@dataclass
class Import:
    """One line of ``-X importtime``: a module's own time and its time with what it imported."""

    module: str
    self_us: int
    cumulative_us: int
    depth: int


@dataclass
class Profile:
    """One measured cold start (times in milliseconds)."""

    app: str
    total_ms: float
    interpreter_ms: float
    imports_ms: float
    startup_ms: float
    categories: dict[str, float] = field(default_factory=dict)
    packages: dict[str, float] = field(default_factory=dict)
    slowest: list[tuple[str, float]] = field(default_factory=list)
    python: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what `--save` writes)."""
        return {
            "app": self.app,
            "python": self.python,
            "total_ms": self.total_ms,
            "interpreter_ms": self.interpreter_ms,
            "imports_ms": self.imports_ms,
            "startup_ms": self.startup_ms,
            "categories": self.categories,
            "packages": self.packages,
            "slowest": [list(item) for item in self.slowest],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """Read what `to_dict` wrote."""
        return cls(
            app=str(data["app"]),
            python=str(data.get("python", "")),
            total_ms=float(data["total_ms"]),
            interpreter_ms=float(data["interpreter_ms"]),
            imports_ms=float(data["imports_ms"]),
            startup_ms=float(data["startup_ms"]),
            categories={k: float(v) for k, v in data["categories"].items()},
            packages={k: float(v) for k, v in data["packages"].items()},
            slowest=[(str(name), float(ms)) for name, ms in data["slowest"]],
        )


class ColdStartError(HoldfastError):
    """The app could not be loaded; the message says why."""


# -- the child: a fresh interpreter loading the app -----------------------------------------

# Run with `python -c` so that nothing but what the app's init needs is imported: the runtime's
# loader (what `holdfast run` uses), the app's module, then the rest of the load (the Adapter).
_CHILD = """
import time
began = time.perf_counter()
import sys
from holdfast import hosts
from holdfast.runtime.loader import InitError, load, split_spec
hosts.install("custom")  # holdfast run's host: an Adapter made at import starts no extension
spec = sys.argv[1]
try:
    module, _ = split_spec(spec)
    __import__(module)  # the import statement: -X importtime logs it
    imported = time.perf_counter()
    load(spec)
    loaded = time.perf_counter()
except InitError as exc:
    import json
    report = exc.report
    error = report.error_type + ": " + report.message + "\\n" + "".join(report.stack_trace)
    print(MARK + json.dumps({"error": error}))
    sys.exit(1)
except Exception as exc:
    import json
    print(MARK + json.dumps({"error": type(exc).__name__ + ": " + str(exc)}))
    sys.exit(1)
import json
files = {n: getattr(m, "__file__", None) or "" for n, m in list(sys.modules.items()) if m}
print(MARK + json.dumps({
    "import_ms": (imported - began) * 1000,
    "startup_ms": (loaded - imported) * 1000,
    "files": files,
    "python": sys.version.split()[0],
}))
""".replace("MARK", repr(_CHILD_MARK))


# -- the parent: run the child, read -X importtime, classify --------------------------------


def measure(spec: str, *, no_pyc: bool = False) -> Profile:
    """One cold start of `spec` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path[1:]])}
    # As in Lambda's init (an Adapter runs lifespan startup there), under `holdfast run`'s host
    # (the child installs it: no managed-runtime extension); nothing listens at the address, and
    # nothing calls it.
    env["AWS_LAMBDA_RUNTIME_API"] = "127.0.0.1:9"
    with tempfile.TemporaryDirectory(prefix="holdfast-coldstart-") as cache:
        flags = ["-X", "importtime"]
        if no_pyc:  # as a package deployed without compiled bytecode: everything compiles
            env["PYTHONPYCACHEPREFIX"] = cache
            flags.append("-B")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=False)
        interpreter_ms = (time.perf_counter() - started) * 1000
        command = [sys.executable, *flags, "-c", _CHILD, spec]
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    marked = [line for line in result.stdout.splitlines() if line.startswith(_CHILD_MARK)]
    if not marked:
        detail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise ColdStartError(f"the interpreter failed: {detail[0]}")
    child = json.loads(marked[-1][len(_CHILD_MARK) :])
    if "error" in child:
        raise ColdStartError(str(child["error"]).strip())
    imports = parse_importtime(result.stderr)
    return _profile(spec, interpreter_ms, child, imports)


def parse_importtime(text: str) -> list[Import]:
    """The `-X importtime` lines of `text`, in order."""
    found = []
    for line in text.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            found.append(Import(module, int(self_us), int(cumulative_us), len(indent) // 2))
    return found


def _profile(
    spec: str, interpreter_ms: float, child: dict[str, Any], imports: list[Import]
) -> Profile:
    files: dict[str, str] = child["files"]
    imports = _after_interpreter_start(imports)
    categories = dict.fromkeys(CATEGORIES, 0.0)
    packages: dict[str, float] = {}
    app_module = spec.partition(":")[0].replace("/", ".")
    for item in imports:
        category = classify(item.module, files.get(item.module, ""), app_module)
        categories[category] += item.self_us / 1000
        if category == "libraries":
            top = item.module.split(".")[0]
            packages[top] = packages.get(top, 0.0) + item.self_us / 1000
    imports_ms = sum(categories.values())
    startup_ms = float(child["startup_ms"])
    total_ms = interpreter_ms + float(child["import_ms"]) + startup_ms
    slowest = sorted(imports, key=lambda i: i.cumulative_us, reverse=True)
    return Profile(
        app=spec,
        python=str(child.get("python", "")),
        total_ms=total_ms,
        interpreter_ms=interpreter_ms,
        imports_ms=imports_ms,
        startup_ms=startup_ms,
        categories=categories,
        packages=dict(sorted(packages.items(), key=lambda kv: kv[1], reverse=True)),
        slowest=[(i.module, i.cumulative_us / 1000) for i in slowest[:40]],
    )


def _after_interpreter_start(imports: list[Import]) -> list[Import]:
    """The imports of the init itself: those before holdfast's are the interpreter's own
    start (`site`, encodings), which the interpreter start figure already counts."""
    for index, item in enumerate(imports):
        if item.depth == 0 and item.module == "holdfast":
            return imports[index:]
    return imports


_LIBRARY_PATHS = tuple(
    os.path.realpath(path)
    for key, path in sysconfig.get_paths().items()
    if key in ("purelib", "platlib")
)
_STDLIB_PATHS = tuple(
    os.path.realpath(path)
    for key, path in sysconfig.get_paths().items()
    if key in ("stdlib", "platstdlib")
)


def classify(module: str, file: str, app_module: str = "") -> str:
    """`holdfast`, `stdlib`, `libraries` or `app`, from the module's name and file."""
    top = module.split(".")[0]
    if top == "holdfast" and module != "holdfast.demo" and module != app_module:
        return "holdfast"
    if module in sys.builtin_module_names or top in sys.stdlib_module_names:
        return "stdlib"
    path = os.path.realpath(file) if file else ""
    if path and any(path.startswith(root + os.sep) for root in _LIBRARY_PATHS):
        return "libraries"
    if path and any(path.startswith(root + os.sep) for root in _STDLIB_PATHS):
        return "stdlib"
    return "app" if path else "libraries"


# -- output ---------------------------------------------------------------------------------


def render(profile: Profile, *, top: int = 12, baseline: Profile | None = None) -> str:
    """The report `holdfast coldstart` prints."""

    def row(label: str, value: float, indent: int, old: float | None = None) -> str:
        delta = ""
        if old is not None:
            change = value - old
            delta = f"   ({'+' if change >= 0 else '-'}{abs(change):.1f} ms vs saved)"
        return f"{'  ' * indent}{label:<{34 - 2 * indent}} {value:8.1f} ms{delta}"

    def old(name: str) -> float | None:
        if baseline is None:
            return None
        value = getattr(baseline, name, None)
        return float(value) if isinstance(value, int | float) else None

    def old_category(name: str) -> float | None:
        return None if baseline is None else baseline.categories.get(name, 0.0)

    lines = [
        f"holdfast coldstart {profile.app}  (Python {profile.python}, a fresh interpreter)",
        "",
        row("init, process start to handler ready", profile.total_ms, 0, old("total_ms")),
        row("interpreter start", profile.interpreter_ms, 1, old("interpreter_ms")),
        row("imports", profile.imports_ms, 1, old("imports_ms")),
    ]
    for category in CATEGORIES:
        value = profile.categories.get(category, 0.0)
        lines.append(row(_LABELS[category], value, 2, old_category(category)))
    lines.append(row("startup (Adapter, lifespan)", profile.startup_ms, 1, old("startup_ms")))
    if profile.packages:
        lines += ["", "libraries by their own modules' import time:"]
        for name, value in list(profile.packages.items())[:top]:
            previous = None if baseline is None else baseline.packages.get(name, 0.0)
            lines.append(row(name, value, 1, previous))
    lines += ["", "slowest imports (cumulative: with everything they import):"]
    for name, value in profile.slowest[:top]:
        lines.append(f"  {name:<48} {value:8.1f} ms")
    lines += [
        "",
        "levers: compile bytecode at build (python -m compileall), import heavy modules lazily",
        "inside the functions that need them, SnapStart on the managed runtime (docs/dev.md).",
    ]
    return "\n".join(lines)


def _median(profiles: list[Profile]) -> Profile:
    """The run with the median total (a whole run, so its parts add up)."""
    middle = statistics.median_low([p.total_ms for p in profiles])
    return next(p for p in profiles if p.total_ms == middle)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="holdfast coldstart",
        description="Measure where the app's cold start goes: interpreter, imports (holdfast, "
        "standard library, libraries, your modules) and startup, in a fresh interpreter.",
    )
    add = parser.add_argument
    add("app", metavar="MODULE:ATTR", help="the app, as given to holdfast run")
    add("--runs", type=int, default=3, help="cold starts to measure; the median is shown (3)")
    add("--top", type=int, default=12, help="rows in the lists (12)")
    add("--save", metavar="FILE", help="save the profile as JSON")
    add("--compare", metavar="FILE", help="show the difference with a saved profile")
    add("--no-pyc", action="store_true", help="as if deployed without compiled bytecode")
    add("--json", action="store_true", help="print the profile as JSON")
    return parser


def main(argv: list[str]) -> int:
    """Entry point of `holdfast coldstart`."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.runs < 1 or args.top < 1:
        parser.error("--runs and --top must be at least 1")
    baseline = None
    if args.compare:
        try:
            with open(args.compare) as file:
                baseline = Profile.from_dict(json.load(file))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"holdfast coldstart: cannot read {args.compare}: {exc}", file=sys.stderr)
            return 2
    try:
        profiles = [measure(args.app, no_pyc=args.no_pyc) for _ in range(args.runs)]
    except ColdStartError as exc:
        print(f"holdfast coldstart: {args.app} failed to load: {exc}", file=sys.stderr)
        print("  hint: `holdfast dev " + args.app + "` shows the same error", file=sys.stderr)
        return 1
    profile = _median(profiles)
    if args.save:
        with open(args.save, "w") as file:
            json.dump(profile.to_dict(), file, indent=2)
    if args.json:
        print(json.dumps(profile.to_dict(), indent=2))
    else:
        print(render(profile, top=args.top, baseline=baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
