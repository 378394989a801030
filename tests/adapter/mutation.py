"""Mutation testing of the core's modules: is a fault in the code caught by the in-process tests?

    .venv/bin/python tests/adapter/mutation.py holdfast.sources.apigw_v2 [more modules]
        [--tests tests/adapter/test_adapter_sources.py ...] [--jobs 2] [--list]

A small AST mutator (this is not ``mutator.py``, which mutates events). One change at a time:
a comparison flipped (``==``/``!=``, ``<``/``>=``, ``<=``/``>``, ``in``/``not in``,
``is``/``is not``), a statement removed (replaced by ``pass``; docstrings are left alone), an
integer constant moved by one (+1 and -1), a boolean constant negated. Each mutant runs in a
child forked from a parent that has imported the libraries once: the child swaps the module's
namespace for the mutated one (and every ``from module import name`` binding of it elsewhere),
then runs pytest with ``-x`` and a short per-test timeout, so a fault that would hang fails fast
(a child past its whole deadline is killed and counts as caught). A mutant is *caught* when the
tests fail; survivors are listed with their line for a human to judge (some are equivalent:
a change no behaviour can show).
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
import inspect
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
#: The in-process tests of the adapter and its codecs, fast and targeted ones first.
DEFAULT_TESTS = [
    "tests/adapter/test_adapter_sources.py",
    "tests/adapter/test_adapter_scope.py",
    "tests/adapter/test_adapter_inputs.py",
    "tests/adapter/test_adapter_security.py",
    "tests/adapter/test_adapter_responses.py",
    "tests/adapter/test_adapter_errors.py",
    "tests/adapter/test_adapter_invocation.py",
    "tests/adapter/test_adapter_wsgi.py",
    "tests/adapter/test_adapter_lifecycle.py",
    "tests/adapter/test_adapter_differential.py",
    "tests/adapter/test_adapter_properties.py",
    "tests/adapter/test_adapter_fuzz.py",
    "tests/lwa/test_lwa_events.py",
    "tests/lwa/test_lwa_rewrite.py",
]
# Tests that start processes (the emulator, runtimes): not in-process (a runtime imports the
# unmutated code from disk), left out.
DESELECT = [
    "-k",
    "not runtime_keeps_serving and not come_from_the_real_invocation"
    " and not is_a_413_not_a_refused_payload",
]
PER_TEST_TIMEOUT = 20  # seconds; pytest-timeout fails a hanging test
PER_MUTANT_DEADLINE = 600  # seconds; past it the child is killed (a hang: caught)

_FLIPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


@dataclass(frozen=True)
class Mutant:
    index: int  # the n-th mutation point of the module, in walk order
    kind: str
    line: int
    description: str


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _points(tree: ast.Module) -> Iterator[tuple[ast.AST, str, object]]:
    """Every mutation point: ``(node, kind, detail)``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for position, op in enumerate(node.ops):
                if type(op) in _FLIPPED:
                    yield node, "compare", position
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            yield node, "bool", None
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield node, "int", +1
            yield node, "int", -1
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if isinstance(statements, list):
                for position, statement in enumerate(statements):
                    if isinstance(statement, ast.stmt) and not _is_docstring(statement):
                        if isinstance(statement, ast.Pass | ast.Import | ast.ImportFrom):
                            continue
                        if isinstance(node, ast.Module | ast.ClassDef):
                            continue  # definitions: removing one only breaks the import
                        yield node, f"remove:{field}", position


def mutants(tree: ast.Module) -> list[Mutant]:
    found = []
    for index, (node, kind, detail) in enumerate(_points(tree)):
        line = getattr(node, "lineno", 0)
        if kind == "compare":
            assert isinstance(node, ast.Compare) and isinstance(detail, int)
            op = type(node.ops[detail])
            text = f"{op.__name__} -> {_FLIPPED[op].__name__}"
        elif kind == "bool":
            text = "negate a boolean"
        elif kind == "int":
            text = f"constant {detail:+d}"
        else:
            statement = getattr(node, kind.split(":")[1])[detail]  # type: ignore[index]
            line = statement.lineno
            text = f"remove `{ast.unparse(statement).splitlines()[0][:60]}`"
        found.append(Mutant(index, kind, line, text))
    return found


def mutated(tree: ast.Module, index: int) -> ast.Module:
    tree = copy.deepcopy(tree)
    for position, (node, kind, detail) in enumerate(_points(tree)):
        if position != index:
            continue
        if kind == "compare":
            assert isinstance(node, ast.Compare) and isinstance(detail, int)
            node.ops[detail] = _FLIPPED[type(node.ops[detail])]()
        elif kind == "bool":
            assert isinstance(node, ast.Constant)
            node.value = not node.value
        elif kind == "int":
            assert isinstance(node, ast.Constant) and isinstance(detail, int)
            node.value = node.value + detail
        else:
            statements = getattr(node, kind.split(":")[1])
            statements[detail] = ast.copy_location(ast.Pass(), statements[detail])
        return ast.fix_missing_locations(tree)
    raise IndexError(index)


def _install(module_name: str, tree: ast.Module) -> None:
    """Run the mutated module in a fresh namespace and rebind every import of its names."""
    module = sys.modules[module_name]
    original = dict(module.__dict__)
    code = compile(tree, module.__file__ or module_name, "exec")
    exec(code, module.__dict__)  # the point of a mutation test
    replaced = {
        name: value
        for name, value in module.__dict__.items()
        if name in original and original[name] is not value
    }
    for other in list(sys.modules.values()):
        if (
            other is None
            or other is module
            or not getattr(other, "__name__", "").startswith("holdfast")
        ):
            continue
        namespace = other.__dict__
        for name, value in replaced.items():
            if name in namespace and namespace[name] is original[name]:
                namespace[name] = value


def _run_child(module_name: str, tree: ast.Module | None, tests: list[str]) -> int:
    import pytest

    if tree is not None:
        _install(module_name, tree)
    arguments = [
        *tests,
        *DESELECT,
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        f"--timeout={PER_TEST_TIMEOUT}",
        "--no-header",
        "--tb=no",
    ]
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    return int(pytest.main(arguments))


def _fork(module_name: str, tree: ast.Module | None, tests: list[str]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            code = _run_child(module_name, tree, tests)
        finally:
            os._exit(code)
    return pid


def _wait(pid: int, deadline: float) -> int | None:
    """The child's exit code; ``None`` when it was killed at its deadline."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.05)  # the parent's own loop: it waits on its children, no test does


def run(
    module_name: str, tests: list[str], jobs: int, listing: bool, lines: set[int]
) -> tuple[int, int]:
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    found = [mutant for mutant in mutants(tree) if not lines or mutant.line in lines]
    if listing:
        for mutant in found:
            print(f"{module_name}:{mutant.line}: {mutant.description}")
        return 0, len(found)
    baseline = _wait(_fork(module_name, None, tests), time.monotonic() + PER_MUTANT_DEADLINE)
    if baseline != 0:
        raise SystemExit(f"the tests fail without any mutation (exit {baseline})")
    caught, survivors = 0, []
    queue = list(found)
    running: dict[int, tuple[Mutant, float]] = {}
    while queue or running:
        while queue and len(running) < jobs:
            mutant = queue.pop(0)
            pid = _fork(module_name, mutated(tree, mutant.index), tests)
            running[pid] = (mutant, time.monotonic() + PER_MUTANT_DEADLINE)
        for pid, (mutant, deadline) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done and time.monotonic() <= deadline:
                continue
            if not done:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                code = None
            else:
                code = os.waitstatus_to_exitcode(status)
            del running[pid]
            if code == 0 or code == 5:  # passed, or nothing collected: not caught
                survivors.append(mutant)
            else:
                caught += 1
        time.sleep(0.05)
    for mutant in sorted(survivors, key=lambda m: m.line):
        print(f"  survived {module_name}:{mutant.line}: {mutant.description}", flush=True)
    return caught, len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="+")
    parser.add_argument("--tests", nargs="*", default=DEFAULT_TESTS)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--lines", type=int, nargs="*", default=[], help="only these lines")
    options = parser.parse_args()
    os.chdir(ROOT)
    sys.path[:0] = [str(HERE), str(ROOT / "tests")]
    # Imported once here, shared by every forked child.
    for library in ("pytest", "hypothesis", "fastapi", "flask", "a2wsgi", "starlette", "httpx"):
        importlib.import_module(library)
    totals = []
    for name in options.modules:
        caught, total = run(name, options.tests, options.jobs, options.list, set(options.lines))
        if not options.list:
            score = 100 * caught / total if total else 100.0
            print(f"{name}: {caught}/{total} mutants caught ({score:.0f} %)", flush=True)
        totals.append((name, caught, total))
    if not options.list and len(totals) > 1:
        caught = sum(c for _, c, _ in totals)
        total = sum(t for _, _, t in totals)
        print(f"all: {caught}/{total} mutants caught ({100 * caught / max(total, 1):.0f} %)")


if __name__ == "__main__":
    main()
