"""Loading MODULE:ATTR: what is run how, and the init errors AWS's runtime would report."""

from __future__ import annotations

import sys

import pytest
import runtime_apps

import holdfast
from holdfast.runtime.loader import InitError, load
from holdfast.runtime.report import ErrorReport, error_category, stack_trace


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    """A directory on sys.path for modules written by the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("rt_tmp_")]:
        del sys.modules[name]


def init_error(spec: str) -> ErrorReport:
    with pytest.raises(InitError) as caught:
        load(spec)
    return caught.value.report


@pytest.fixture
def loaded():
    """``loaded(spec)``: ``load(spec)``, with the adapters it makes shut down after the test."""
    targets = []

    def load_and_track(spec):
        target = load(spec)
        targets.append(target)
        return target

    yield load_and_track
    for target in targets:
        adapter = target.adapter
        if adapter is not None and adapter is not runtime_apps.adapter:
            adapter.engine.run(adapter.shutdown(5))
            adapter.engine.close()


def test_an_asgi_app_is_wrapped_in_an_adapter(loaded):
    target = loaded("runtime_apps:app")
    assert isinstance(target.adapter, holdfast.Adapter)
    assert target.adapter.app is runtime_apps.app
    assert target.handler is None


def test_an_adapter_is_used_as_it_is(loaded):
    assert loaded("runtime_apps:adapter").adapter is runtime_apps.adapter


def test_a_wsgi_app_is_wrapped(loaded):
    target = loaded("runtime_apps:flask_app")
    assert target.adapter is not None
    assert target.adapter.app is not runtime_apps.flask_app  # the a2wsgi bridge


@pytest.mark.parametrize("name", ["handler", "failing_handler", "async_handler"])
def test_plain_handlers_run_as_they_are(name):
    target = load(f"runtime_apps:{name}")
    assert target.adapter is None
    assert target.handler is getattr(runtime_apps, name)
    assert target.is_async == (name == "async_handler")


HANDLERS = (
    "def handler(event, context):\n    return 1\n\n\n"
    "class Holder:\n    @staticmethod\n    def handler(event, context):\n        return 1\n\n\n"
    "class Handler:\n    def __call__(self, event, context):\n        return 1\n\n\n"
    "class App:\n    async def __call__(self, scope, receive, send):\n        pass\n\n\n"
    "def application(environ, start_response):\n"
    "    start_response('200 OK', [])\n"
    "    return [b'ok']\n\n\n"
    "handler_object = Handler()\n"
    "app_object = App()\n"
)


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("rt_tmp_kinds.handler", "handler"),  # module.attr, the managed runtime's _HANDLER
        ("rt_tmp_kinds:Holder.handler", "handler"),  # a dotted attribute
        ("rt_tmp_kinds:handler_object", "handler"),  # a callable object: its __call__ counts
        ("rt_tmp_kinds:app_object", "adapter"),
        ("rt_tmp_kinds:application", "adapter"),  # WSGI, told apart by its parameter names
    ],
)
def test_what_is_run_how(module_dir, loaded, spec, kind):
    (module_dir / "rt_tmp_kinds.py").write_text(HANDLERS)
    target = loaded(spec)
    assert getattr(target, kind) is not None


def test_a_missing_module_is_an_import_module_error():
    report = init_error("rt_tmp_nowhere:app")
    assert report.error_type == report.category == "Runtime.ImportModuleError"
    assert report.message == (
        "Unable to import module 'rt_tmp_nowhere': No module named 'rt_tmp_nowhere'"
    )


def test_a_missing_attribute_is_handler_not_found():
    report = init_error("runtime_apps:nothing_here")
    assert report.category == "Runtime.HandlerNotFound"
    assert report.message == "Handler 'nothing_here' missing on module 'runtime_apps'"


def test_a_non_callable_attribute_is_refused():
    report = init_error("runtime_apps:not_callable")
    assert report.category == "Runtime.HandlerNotFound"
    assert "not an app or a function" in report.message


@pytest.mark.parametrize("spec", ["just_a_module", ":app", "module:"])
def test_a_malformed_spec(spec):
    assert init_error(spec).category == "Runtime.MalformedHandlerName"


def test_a_builtin_module_conflict():
    assert init_error("sys:exit").category == "Runtime.BuiltInModuleConflict"


def test_a_syntax_error(module_dir):
    (module_dir / "rt_tmp_syntax.py").write_text("def broken(:\n")
    report = init_error("rt_tmp_syntax:app")
    assert report.category == "Runtime.UserCodeSyntaxError"
    assert "rt_tmp_syntax.py" in report.stack_trace[0]


def test_an_exception_while_importing(module_dir):
    (module_dir / "rt_tmp_raises.py").write_text("raise KeyError('CONFIG')\n")
    report = init_error("rt_tmp_raises:app")
    assert (report.error_type, report.category) == ("KeyError", "Runtime.KeyError")
    assert any("rt_tmp_raises.py" in line for line in report.stack_trace)


def test_a_failing_lifespan_startup_is_an_init_error():
    report = init_error("runtime_apps:failing_startup")
    assert report.error_type == "LifespanError"
    assert report.category == "Runtime.LifespanError"
    assert "database unreachable" in report.message


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("ValueError", "Function.ValueError"),
        ("HTTPError.502", "Function.HTTPError"),
        ("my_error", "Function.Myerror"),
        ("_", "Function.Unknown"),
    ],
)
def test_error_categories_are_always_valid_for_rapid(name, category):
    assert error_category("Function", name) == category


def test_stack_traces_leave_out_the_runtimes_own_frames():
    def fail():
        raise ValueError("x")

    try:
        fail()
    except ValueError as exc:
        lines = stack_trace(exc)
    assert any("in fail" in line for line in lines)
    assert all("holdfast/runtime/" not in line for line in lines)


def test_huge_messages_are_truncated():
    report = ErrorReport.from_exception(ValueError("x" * 1_000_000))
    assert len(report.body()) < 300_000
    assert report.message.endswith("[truncated]")


AGREEING_MODULE = """
import holdfast

startups = []


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        startups.append(1)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 502, "headers": []})
    await send({"type": "http.response.body", "body": b"upstream down"})


handler = holdfast.Adapter(app, error_status_codes=[502], base_path="/api")
"""


def test_module_app_and_module_handler_agree(module_dir):
    # `holdfast run module:app` must not drop the options of the Adapter the module built, nor
    # start the app a second time.
    (module_dir / "rt_tmp_agree.py").write_text(AGREEING_MODULE)
    by_app = load("rt_tmp_agree:app")
    by_handler = load("rt_tmp_agree:handler")
    module = sys.modules["rt_tmp_agree"]
    try:
        assert by_app.adapter is by_handler.adapter is module.handler
        assert by_app.adapter.error_status_codes == frozenset({502})
        assert by_app.adapter.base_path == "/api"
        assert module.startups == [1]
    finally:
        module.handler.close()


def test_the_task_cli_resolves_with_the_same_loader(module_dir):
    from holdfast.tasks.cli import load_queue

    (module_dir / "rt_tmp_notqueue.py").write_text("value = 1\n")
    with pytest.raises(SystemExit, match=r"HandlerNotFound|missing"):
        load_queue("rt_tmp_notqueue:missing")
    with pytest.raises(SystemExit, match="not a TaskQueue"):
        load_queue("rt_tmp_notqueue:value")
