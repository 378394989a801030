"""The public API is what ``__all__`` says, and every error holdfast raises on purpose shares one
base class."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

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
        "Failed",
        "FunctionError",
        "HTTPStatusError",
        "HoldfastError",
        "InvalidEvent",
        "LambdaContext",
        "LifespanError",
        "Outcome",
        "Streamed",
        "adopt",
        "after_response",
        "detach",
        "on_response_sent",
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
