"""The shape of src/holdfast's imports, read from the source (ast): the core depends on nothing
above it.

The core turns events into invocations (adapter, invocation, dispatch, codecs, bridge, pending,
engine, lifespan, outcome and their helpers). It must never import a host (``holdfast.hosts``,
the Runtime API client, the proxy), the task queue (``holdfast.tasks``, which plugs in through
the core's registration hooks) or a tool (emulator, dev server), not even lazily; its modules
import no circle among themselves; and at module level they need only the standard library.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "holdfast"

CORE = {
    "holdfast",
    "holdfast._types",
    "holdfast.adapter",
    "holdfast.adoption",
    "holdfast.appcode",
    "holdfast.bridge",
    "holdfast.compression",
    "holdfast.config",
    "holdfast.dispatch",
    "holdfast.engine",
    "holdfast.errors",
    "holdfast.events",
    "holdfast.invocation",
    "holdfast.lifespan",
    "holdfast.outcome",
    "holdfast.pending",
    "holdfast.rewrite",
    "holdfast.telemetry",
}
# Above the core: what it may never import.
ABOVE = (
    "holdfast.hosts",
    "holdfast.tasks",
    "holdfast.runtime",
    "holdfast.proxy",
    "holdfast.emulator",
    "holdfast.dev",
    "holdfast.cli",
    "holdfast.coldstart",
)
# The package's entry point (holdfast/__init__.py) is where the public API meets the hosts: it
# registers the hosts' hook when `holdfast.Adapter` is first looked up, and re-exports the one
# host-level name users need (`holdfast.trace_id`). No other edge goes up.
ENTRY_POINT_EDGES = {("holdfast", "holdfast.hosts"), ("holdfast", "holdfast.runtime.context")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(path): path for path in SRC.rglob("*.py")}
CORE |= {name for name in MODULES if name.startswith("holdfast.sources")}


class _Imports(ast.NodeVisitor):
    """Every import of a module: (target, at module level?, under TYPE_CHECKING?)."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[str, bool, bool]] = []
        self._depth = 0
        self._type_checking = 0

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        guarded = isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        self._type_checking += guarded
        for child in node.body:
            self.visit(child)
        self._type_checking -= guarded
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        self._add(target)
        for alias in node.names:  # `from holdfast import hosts` imports a module
            if f"{target}.{alias.name}" in MODULES:
                self._add(f"{target}.{alias.name}")

    def _add(self, target: str) -> None:
        self.found.append((target, self._depth == 0, self._type_checking > 0))


def _imports(module: str) -> list[tuple[str, bool, bool]]:
    path = MODULES[module]
    visitor = _Imports(module, path.name == "__init__.py")
    visitor.visit(ast.parse(path.read_text(), str(path)))
    return visitor.found


def _holdfast(target: str) -> str | None:
    """The holdfast module ``target`` names (a module, or the package of a name in it)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def test_the_core_list_names_real_modules():
    assert {name for name in CORE if name not in MODULES} == set()


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_imports_nothing_above_it(module):
    above = {
        target
        for target, _, _ in _imports(module)
        if target.startswith(ABOVE) and (module, _holdfast(target)) not in ENTRY_POINT_EDGES
    }
    assert above == set(), f"{module} imports {sorted(above)}"


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_needs_only_the_standard_library_at_import(module):
    outside = {
        target.split(".")[0]
        for target, top_level, type_checking in _imports(module)
        if top_level and not type_checking and target.split(".")[0] != "holdfast"
    }
    assert outside - set(sys.stdlib_module_names) - {"__future__"} == set()


def _is_sys_modules(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "modules"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    )


def _module_looked_up(node: ast.AST) -> str | None:
    """The module name ``node`` looks up or imports by string, if it does."""
    key: ast.AST | None = None
    if isinstance(node, ast.Subscript) and _is_sys_modules(node.value):
        key = node.slice
    elif isinstance(node, ast.Call) and node.args:
        func = node.func
        looks_up = isinstance(func, ast.Attribute) and (
            (func.attr == "get" and _is_sys_modules(func.value)) or func.attr == "import_module"
        )
        if looks_up or (isinstance(func, ast.Name) and func.id in ("__import__", "import_module")):
            key = node.args[0]
    if isinstance(key, ast.Constant) and isinstance(key.value, str):
        return key.value
    return None


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_does_not_name_what_is_above_it(module):
    # No back door either: a module name as a string (`sys.modules.get("holdfast.tasks")`,
    # importlib) is an import the graph above would not see. (Looking up third-party libraries
    # in sys.modules, as telemetry does to flush only what the app uses, is no such edge.)
    allowed = {target for source, target in ENTRY_POINT_EDGES if source == module}
    tree = ast.parse(MODULES[module].read_text())
    named = [
        (node.lineno, name)
        for node in ast.walk(tree)
        if (name := _module_looked_up(node)) is not None
        and name.startswith(ABOVE)
        and not any(name.startswith(target) for target in allowed)
    ]
    assert named == []


def test_no_import_circle_among_the_core_modules():
    graph = {
        module: {
            found
            for target, _, type_checking in _imports(module)
            if not type_checking and (found := _holdfast(target)) in CORE and found != module
        }
        for module in CORE
    }
    # A package imports its submodules' names; those submodules importing the package's other
    # modules is no circle of the core's design.
    graph["holdfast"] = set()
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in graph[node]:
            if nxt in path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(node)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert cycles == []


def test_the_walk_sees_the_edges_it_must_forbid():
    # The check above would pass vacuously if the walk missed imports: it does not.
    assert ("holdfast.hosts", False, False) in _imports("holdfast")
    assert any(t == "holdfast.invocation" for t, _, _ in _imports("holdfast.adapter"))
    assert ("holdfast.adapter", True, True) in _imports("holdfast.invocation")
    assert any(t.startswith("holdfast.tasks") for t, _, _ in _imports("holdfast.tasks.integration"))
