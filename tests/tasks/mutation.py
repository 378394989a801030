"""A small AST mutation tester: how many faults in a module do its tests catch?

    .venv/bin/python tests/tasks/mutation.py src/holdfast/tasks/executor.py \\
        tests/tasks/test_tasks_executor.py tests/tasks/test_tasks_worker.py

Each mutant is one change: a comparison flipped (`<` to `>=`, `==` to `!=`, `is` to
`is not`, `in` to `not in`, ...), one statement removed (replaced by `pass`), or one numeric
constant moved by one. The mutated module goes into a copy of `src/` put first on PYTHONPATH
(the worktree is never touched), the tests run with short per-test deadlines, and a mutant
counts as caught when they fail or time out. Prints the survivors and the score.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import queue
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_FLIPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _points(tree: ast.Module) -> Iterator[tuple[str, int, int]]:
    """(kind, node index in ast.walk order, operand index) of every mutation."""
    for index, node in enumerate(ast.walk(tree)):
        if isinstance(node, ast.Compare):
            for position, op in enumerate(node.ops):
                if type(op) in _FLIPPED:
                    yield "compare", index, position
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            yield "constant+1", index, 0
            yield "constant-1", index, 0
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.If, ast.For, ast.While,
                             ast.With, ast.AsyncWith, ast.Try, ast.ExceptHandler)):  # fmt: skip
            for field in ("body", "orelse", "finalbody"):
                for position, statement in enumerate(getattr(node, field, [])):
                    if not _is_docstring(statement) and not isinstance(statement, ast.Pass):
                        yield f"remove:{field}", index, position


def _mutate(tree: ast.Module, kind: str, index: int, position: int) -> tuple[ast.Module, str]:
    mutant = copy.deepcopy(tree)
    node = list(ast.walk(mutant))[index]
    if kind == "compare":
        assert isinstance(node, ast.Compare)
        old = node.ops[position]
        node.ops[position] = _FLIPPED[type(old)]()
        what = f"{type(old).__name__} -> {type(node.ops[position]).__name__}"
    elif kind.startswith("constant"):
        assert isinstance(node, ast.Constant)
        step = 1 if kind == "constant+1" else -1
        what = f"{node.value!r} -> {node.value + step!r}"
        node.value = node.value + step
    else:
        body = getattr(node, kind.split(":")[1])
        node = body[position]
        what = f"removed: {ast.unparse(node).splitlines()[0][:70]}"
        body[position] = ast.Pass()
    return mutant, f"line {getattr(node, 'lineno', 0)}: {what}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", help="the module to mutate, e.g. src/holdfast/tasks/executor.py")
    parser.add_argument("tests", nargs="+")
    parser.add_argument("--per-test-timeout", type=float, default=20.0)
    parser.add_argument("--mutant-timeout", type=float, default=120.0)
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once")
    args = parser.parse_args()

    module = Path(args.module).resolve()
    relative = module.relative_to(ROOT / "src")
    original = module.read_text()  # read once: the worktree may change while mutants run
    tree = ast.parse(original)
    points = list(_points(tree))
    command = [
        sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
        f"--timeout={args.per_test_timeout}", "--timeout-method=thread", *args.tests,
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="holdfast-mutants-") as tmp:
        copies: queue.SimpleQueue[Path] = queue.SimpleQueue()
        for job in range(args.jobs):
            shutil.copytree(ROOT / "src", Path(tmp) / str(job) / "src")
            copies.put(Path(tmp) / str(job) / "src")

        def run(source: str | None) -> bool:
            """True when the tests fail (or hang) with `source` as the module."""
            copy = copies.get()
            target = copy / relative
            pythonpath = f"{copy}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
            try:
                if source is not None:
                    target.write_text(source)
                result = subprocess.run(
                    command,
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": pythonpath},
                    capture_output=True,
                    timeout=args.mutant_timeout,
                )
                return result.returncode != 0
            except subprocess.TimeoutExpired:
                return True
            finally:
                target.write_text(original)
                copies.put(copy)

        if run(None):
            sys.exit("the tests fail without any mutation")
        mutants = [_mutate(tree, kind, index, position) for kind, index, position in points]
        caught, survivors = 0, []
        with ThreadPoolExecutor(args.jobs) as pool:
            killed_each = pool.map(lambda m: run(ast.unparse(m[0])), mutants)
            for number, ((_, what), killed) in enumerate(zip(mutants, killed_each, strict=True), 1):
                caught += killed
                if not killed:
                    survivors.append(what)
                verdict = "caught " if killed else "SURVIVED"
                print(f"[{number}/{len(points)}] {verdict} {what}", flush=True)
    print("\nsurvivors:")
    for what in survivors:
        print(f"  {what}")
    score = 100 * caught / len(points)
    print(f"\n{relative}: {caught}/{len(points)} mutants caught ({score:.0f} %)")


if __name__ == "__main__":
    main()
