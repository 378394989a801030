"""Lifespan once per adapter, its state in every request, and one persistent event loop that
serves every invocation from whichever thread calls the handler."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
from adapter_apps import read_body
from adapter_events import Request, function_url_event, rest_event
from fastapi import BackgroundTasks, FastAPI
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

import holdfast


class LifespanApp:
    """Counts lifespan events and requests; stores state at startup; notes the running loop."""

    def __init__(self, startup_message=None):
        self.startup_message = startup_message
        self.events: list[str] = []
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.states: list[dict] = []

    async def __call__(self, scope, receive, send):
        self.loops.append(asyncio.get_running_loop())
        if scope["type"] == "lifespan":
            message = await receive()
            self.events.append(message["type"])
            if self.startup_message is not None:
                await send(self.startup_message)
                return
            scope["state"]["connection"] = {"opened": True}
            scope["state"]["counter"] = 0
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            self.events.append(message["type"])
            await send({"type": "lifespan.shutdown.complete"})
            return
        await read_body(receive)
        self.events.append("request")
        self.states.append(scope["state"])
        scope["state"]["counter"] += 1  # a request's own copy: never seen by the next one
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def event(path="/"):
    return function_url_event(Request(target=path))


def test_lifespan_starts_once_per_adapter_not_per_invocation(make_adapter):
    app = LifespanApp()
    handler = make_adapter(app)
    assert app.events == []  # outside Lambda, nothing starts before the first call
    for _ in range(3):
        assert handler(event(), None)["statusCode"] == 200
    assert app.events == ["lifespan.startup", "request", "request", "request"]
    handler.engine.run(handler.shutdown())
    assert app.events[-1] == "lifespan.shutdown"
    assert app.events.count("lifespan.startup") == 1


def test_lifespan_state_reaches_every_request(make_adapter):
    app = LifespanApp()
    handler = make_adapter(app)
    handler(event(), None)
    handler(event(), None)
    first, second = app.states
    assert first["connection"] is second["connection"] is handler.lifespan.state["connection"]
    assert first == second == {"connection": {"opened": True}, "counter": 1}
    assert handler.lifespan.state["counter"] == 0
    assert first is not second


def test_starlette_lifespan_state_reaches_request_state(make_adapter):
    startups = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        startups.append(1)
        yield {"greeting": "hello from startup"}

    async def home(request):
        return PlainTextResponse(request.state.greeting)

    handler = make_adapter(Starlette(routes=[Route("/", home)], lifespan=lifespan))
    bodies = [handler(event(), None)["body"] for _ in range(2)]
    assert bodies == ["hello from startup"] * 2
    assert startups == [1]


@pytest.fixture
def on_lambda(monkeypatch):
    """As in a Lambda environment (the extension off: no Extensions API here)."""
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
    monkeypatch.setenv("HOLDFAST_EXTENSION", "off")


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failure_raises_lifespan_error_at_construction_on_lambda(mode, on_lambda):
    app = LifespanApp({"type": "lifespan.startup.failed", "message": "database unreachable"})
    with pytest.raises(holdfast.LifespanError, match="database unreachable"):
        holdfast.Adapter(app, lifespan=mode)
    assert app.events == ["lifespan.startup"]


def test_startup_failure_raises_lifespan_error_at_the_first_call_elsewhere():
    app = LifespanApp({"type": "lifespan.startup.failed", "message": "database unreachable"})
    handler = holdfast.Adapter(app)
    assert app.events == []
    for _ in range(2):  # every call: the app never started
        with pytest.raises(holdfast.LifespanError, match="database unreachable"):
            handler(event(), None)
    assert app.events == ["lifespan.startup"]
    handler.close()


def test_startup_exception_in_a_framework_raises_lifespan_error(on_lambda):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        raise ConnectionError("no database")
        yield

    with pytest.raises(holdfast.LifespanError, match="no database"):
        holdfast.Adapter(Starlette(lifespan=lifespan))


def test_on_lambda_startup_runs_in_the_init_phase(on_lambda, make_adapter):
    app = LifespanApp()
    make_adapter(app)
    assert app.events == ["lifespan.startup"]


def test_auto_mode_accepts_an_app_without_lifespan(make_adapter):
    requests = []

    async def app(scope, receive, send):
        assert scope["type"] == "http", "no lifespan support"
        requests.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    handler = make_adapter(app)
    assert handler(event("/x"), None)["statusCode"] == 200
    assert requests == ["/x"]
    assert handler.lifespan.supported is False


def test_on_mode_requires_lifespan_support():
    async def app(scope, receive, send):
        raise RuntimeError(f"unsupported scope {scope['type']}")

    with pytest.raises(holdfast.LifespanError):
        holdfast.Adapter(app, lifespan="on")(event(), None)


def test_auto_mode_sends_lifespan_once(make_adapter, recorder):
    handler = make_adapter(recorder)
    handler(event("/x"), None)
    handler(event("/y"), None)
    assert recorder.lifespans == 1
    assert handler.lifespan.supported is True


def test_off_mode_never_sends_lifespan(make_adapter, recorder):
    handler = make_adapter(recorder, lifespan="off")
    handler(event("/x"), None)
    assert recorder.lifespans == 0
    assert recorder.scope["state"] == {}
    assert handler.lifespan.supported is False


def test_invalid_lifespan_mode():
    with pytest.raises(ValueError, match="'auto', 'on' or 'off'"):
        holdfast.Adapter(LifespanApp(), lifespan="sometimes")


def test_shutdown_failure_raises_lifespan_error(make_adapter):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})

    handler = holdfast.Adapter(app)
    handler.start()
    with pytest.raises(holdfast.LifespanError, match="flush failed"):
        handler.engine.run(handler.shutdown())
    handler.engine.close()


# -- one persistent event loop -----------------------------------------------------------------


def test_one_loop_serves_every_invocation(make_adapter):
    app = LifespanApp()
    handler = make_adapter(app)
    handler(event(), None)
    handler(event(), None)
    lifespan_loop, first, second = app.loops
    assert first is second is lifespan_loop is handler.engine.loop
    assert not first.is_closed()


def test_loop_state_survives_between_invocations(make_adapter):
    # A connection pool made in one invocation is usable in the next: same loop, still open.
    pool = {}

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        if "queue" not in pool:
            pool["queue"] = asyncio.Queue()
        await pool["queue"].put(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(pool["queue"].qsize()).encode()})

    handler = make_adapter(app)
    assert [handler(event(f"/{n}"), None)["body"] for n in range(3)] == ["1", "2", "3"]


def test_handler_works_from_a_thread_without_an_event_loop(make_adapter):
    app = LifespanApp()
    handler = make_adapter(app)
    handler(event("/main"), None)
    outcome = {}

    def call():
        try:
            asyncio.get_event_loop()
        except RuntimeError:
            outcome["thread_had_loop"] = False
        else:
            outcome["thread_had_loop"] = True
        outcome["result"] = handler(event("/thread"), None)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(timeout=30)
    assert outcome["thread_had_loop"] is False
    assert outcome["result"]["statusCode"] == 200
    assert app.loops[-1] is app.loops[-2] is handler.engine.loop


def test_adapter_made_in_a_thread_serves_the_main_thread(make_adapter):
    made = {}
    thread = threading.Thread(
        target=lambda: made.setdefault("handler", make_adapter(LifespanApp()))
    )
    thread.start()
    thread.join(timeout=30)
    result = made["handler"](event(), None)
    assert result["statusCode"] == 200


def test_calling_the_sync_handler_inside_a_running_loop_is_refused(make_adapter):
    handler = make_adapter(LifespanApp())

    async def inside():
        handler(event(), None)

    with pytest.raises(RuntimeError, match=r"asyncio\.to_thread\(handler, event, context\)"):
        asyncio.run(inside())


def test_async_code_calls_the_handler_in_a_thread(make_adapter):
    app = LifespanApp()
    handler = make_adapter(app)

    async def inside():
        return await asyncio.to_thread(handler, event("/from-async"), None)

    assert asyncio.run(inside())["statusCode"] == 200
    assert app.loops[-1] is handler.engine.loop


def test_begin_on_a_foreign_loop_is_refused_instead_of_hanging(make_adapter):
    app = LifespanApp()
    handler = make_adapter(app)

    async def inside():
        handler.begin(event(), None)

    with pytest.raises(RuntimeError, match=r"adapter\.engine\.loop"):
        asyncio.run(inside())
    assert "request" not in app.events


def test_adapter_made_inside_a_running_loop_starts_up_on_first_begin(make_adapter, on_lambda):
    app = LifespanApp()

    async def make():
        return make_adapter(app)

    handler = asyncio.run(make())
    assert app.events == []

    async def invoke():
        invocation = handler.begin(event("/custom-runtime"), None)
        outcome = await invocation.outcome()
        invocation.handed_over()
        await invocation.drain(None)
        return outcome.payload

    result = handler.engine.run(invoke())
    assert result["statusCode"] == 200
    assert app.events == ["lifespan.startup", "request"]


def test_adapter_made_inside_a_running_loop_starts_up_on_first_sync_call(make_adapter):
    app = LifespanApp()

    async def make():
        return make_adapter(app)

    handler = asyncio.run(make())
    assert app.events == []
    assert handler(event("/managed-runtime"), None)["statusCode"] == 200
    assert handler(event("/managed-runtime"), None)["statusCode"] == 200
    assert app.events == ["lifespan.startup", "request", "request"]
    assert app.states[0]["connection"] == {"opened": True}


# -- work after the response -------------------------------------------------------------------


def test_background_tasks_finish_before_the_handler_returns(make_adapter):
    done = []
    app = FastAPI()

    @app.post("/orders")
    async def create(background: BackgroundTasks):
        background.add_task(done.append, "email sent")
        return {"created": True}

    handler = make_adapter(app)
    result = handler(rest_event(Request("POST", "/orders")), None)
    assert (result["statusCode"], result["body"]) == (200, '{"created":true}')
    assert done == ["email sent"]
    assert handler.counts["drained"] == 1


def test_app_exception_after_the_response_keeps_the_response(make_adapter, caplog):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"sent"})
        raise RuntimeError("cleanup failed")

    result = make_adapter(app)(event(), None)
    assert (result["statusCode"], result["body"]) == (200, "sent")
    [record] = caplog.records
    assert record.getMessage() == "request id: the app raised after its response was complete"
    assert str(record.exc_info[1]) == "cleanup failed"


def test_json_response_through_starlette(make_adapter):
    async def home(request):
        return JSONResponse({"path": request.url.path, "q": request.query_params.getlist("q")})

    handler = make_adapter(Starlette(routes=[Route("/items", home)]))
    result = handler(event("/items?q=a+b&q=c%2Bd"), None)
    assert result["body"] == '{"path":"/items","q":["a b","c+d"]}'
