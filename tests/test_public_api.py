"""The public API is what ``__all__`` says, and every error holdfast raises on purpose shares one
base class."""

from __future__ import annotations

import importlib
import inspect
import pathlib
import pkgutil
import re

import pytest

import holdfast
from holdfast import errors

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(holdfast.__path__, "holdfast.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_every_name_in_all_exists(name):
    module = importlib.import_module(name)
    missing = [item for item in getattr(module, "__all__", ()) if not hasattr(module, item)]
    assert missing == []


def test_the_package_exports_resolve_and_are_listed():
    assert sorted(holdfast.__all__) == sorted(dir(holdfast))
    for item in holdfast.__all__:
        assert getattr(holdfast, item) is not None


def test_holdfast_errors_share_one_base():
    assert holdfast.HoldfastError is errors.HoldfastError
    for item in errors.__all__:
        value = getattr(errors, item)
        if inspect.isclass(value):
            assert issubclass(value, holdfast.HoldfastError), item


def test_the_errors_a_user_can_meet_are_holdfast_errors():
    from holdfast.coldstart import ColdStartError
    from holdfast.runtime.client import RuntimeAPIError
    from holdfast.runtime.context import ContextError
    from holdfast.runtime.loader import InitError
    from holdfast.tasks.errors import TaskError

    for error in (InitError, RuntimeAPIError, ContextError, ColdStartError, TaskError):
        assert issubclass(error, holdfast.HoldfastError), error


def test_the_package_exports_are_pinned():
    # Adding or removing a public name is an API change: it is made here, on purpose.
    assert sorted(holdfast.__all__) == [
        "ASGIProtocolError",
        "Adapter",
        "Buffered",
        "CompletionMiddleware",
        "Failed",
        "FlushAfterResponse",
        "FunctionError",
        "HTTPStatusError",
        "HoldfastError",
        "InvalidEvent",
        "LambdaContext",
        "LifespanError",
        "Outcome",
        "Streamed",
        "WSGICompletionMiddleware",
        "adopt",
        "after_response",
        "detach",
        "on_response_sent",
        "opentelemetry_flush",
        "trace_id",
    ]


def test_the_lambda_context_type_is_public():
    from holdfast._types import LambdaContext

    # What handlers annotate `context` with: awslambdaric's object, holdfast run's
    # RuntimeContext or a test's stand-in may come, so it is the alias every module uses.
    assert holdfast.LambdaContext is LambdaContext
    assert "LambdaContext" in dir(holdfast)


def test_the_current_invocations_trace_id_is_public():
    from holdfast.runtime.context import trace_id

    # Per invocation under holdfast run (several at once share no process-wide variable).
    assert holdfast.trace_id is trace_id
    assert holdfast.trace_id() is None  # outside an invocation


def test_importing_holdfast_imports_no_host_and_the_adapter_plugs_the_hosts_in():
    import subprocess
    import sys

    code = (
        "import sys, holdfast\n"
        "before = 'holdfast.hosts' in sys.modules\n"
        "from holdfast import Adapter\n"
        "from holdfast import adapter, hosts\n"
        "print(before, hosts.attach in adapter._created_hooks)\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.stdout.split() == ["False", "True"], done.stderr


# What users import: these modules' ``__all__`` (the rest of holdfast is internal).
PUBLIC_MODULES = {
    "holdfast",
    "holdfast.tasks",
    "holdfast.events",
    "holdfast.azure",
    "holdfast.emulator",
}
# Named in the docs as a runnable target (`holdfast dev holdfast.demo:handler`), not imported.
RUNNABLE_TARGETS = {"holdfast.demo"}
ROOT = pathlib.Path(__file__).resolve().parents[1]
# `holdfast.x.y` in text or an import; not a file name (`sqlite:///holdfast.db`, `./holdfast.db`).
DOTTED = re.compile(r"(?<![\w/.-])holdfast(?:\.[A-Za-z_]\w*)+")
IMPORT = re.compile(r"^\s*from\s+(holdfast(?:\.\w+)*)\s+import\s+(\([^)]*\)|[^\n]+)", re.MULTILINE)


def _user_facing_files() -> list[pathlib.Path]:
    docs = [p for p in (ROOT / "docs").glob("*.md") if p.name != "architecture.md"]
    examples = [
        p
        for p in (ROOT / "examples").rglob("*")
        if p.suffix in (".py", ".md", ".txt", ".toml", ".yaml", ".yml", ".json")
    ]
    return [ROOT / "README.md", *docs, *examples]


def non_public_references(text: str) -> list[str]:
    """Every ``holdfast.<module>[.<name>]`` in ``text`` that is not a public import."""
    names = [match.group(0) for match in DOTTED.finditer(text)]
    for match in IMPORT.finditer(text):
        module = match.group(1)
        listed = re.sub(r"#[^\n]*", "", match.group(2)).strip("()")
        for item in listed.split(","):
            words = item.split()  # "Name" or "Name as alias"
            if words:
                names.append(f"{module}.{words[0]}")
    return sorted({name for name in names if not _public(name)})


def _public(dotted: str) -> bool:
    parts = dotted.split(".")
    # The longest prefix that is a module names where the rest must be exported from.
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        if module_name in RUNNABLE_TARGETS:
            return True
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        rest = parts[cut:]
        if module_name not in PUBLIC_MODULES:
            return False
        return not rest or rest[0] in getattr(module, "__all__", ())
    return False


def test_the_reference_check_tells_public_from_internal():
    text = (
        "holdfast.after_response(fn) and holdfast.tasks.TaskQueue and holdfast.azure.FunctionApp\n"
        "from holdfast.events import SQSRecord, each_record\n"
        "sqlite:///holdfast.db\n"
    )
    assert non_public_references(text) == []
    text = (
        "holdfast.runtime.context.current_request() and holdfast.tasks.backend.Backend\n"
        "from holdfast.completion import CompletionMiddleware\n"
        "holdfast.nothing_such\n"
    )
    assert non_public_references(text) == [
        "holdfast.completion",
        "holdfast.completion.CompletionMiddleware",
        "holdfast.nothing_such",
        "holdfast.runtime.context.current_request",
        "holdfast.tasks.backend.Backend",
    ]


@pytest.mark.parametrize("path", _user_facing_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_and_examples_name_only_public_imports(path):
    assert non_public_references(path.read_text(encoding="utf-8", errors="replace")) == []
