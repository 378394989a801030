"""holdfast.azure.FunctionApp under the worker stand-in (see worker_standin.py): the HTTP streaming
mode through the extension's real web server, the classic mode through azure.functions objects.

Ordering is asserted through events, never wall-clock comparisons: a background task that
waits for the client to have its response would deadlock (and time out) if the response
waited for the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import azure.functions as func
import pytest
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from hypothesis import given, settings
from hypothesis import strategies as st
from worker_standin import ClassicWorker, StreamingWorker

import holdfast
import holdfast.azure
from holdfast.errors import HTTPStatusError, InvalidEvent
from holdfast.sources.azure import AzureHTTP


class Log:
    """What happened, in order, across the worker's loop, the adapter's loop and threads."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.client_has_response = threading.Event()
        self.work_done = threading.Event()
        self._lock = threading.Lock()

    def add(self, event: str) -> None:
        with self._lock:
            self.events.append(event)
        if event.endswith(" done"):
            self.work_done.set()


def make_api(log: Log) -> FastAPI:
    starts: list[int] = []

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        starts.append(1)
        log.add("startup")
        yield

    api = FastAPI(lifespan=lifespan)
    api.state.starts = starts

    @api.get("/plain")
    async def plain(request: Request) -> dict:
        return {
            "path": request.url.path,
            "root_path": request.scope["root_path"],
            "query": request.url.query,
            "headers": sorted(k for k in request.headers if k.startswith(("x-amz", "x-ms"))),
            "request_id": request.scope["aws.context"].invocation_id,
        }

    @api.post("/signup")
    async def signup(payload: dict, background: BackgroundTasks) -> JSONResponse:
        async def welcome() -> None:
            # Finishes only once the client has the response: proves it was not waited for.
            await asyncio.to_thread(log.client_has_response.wait, 30)
            log.add("background task done")

        background.add_task(welcome)
        return JSONResponse({"hello": payload["name"]}, status_code=201)

    @api.get("/after")
    async def after() -> dict:
        async def audit() -> None:
            await asyncio.to_thread(log.client_has_response.wait, 30)
            log.add("after_response done")

        holdfast.after_response(audit)
        return {"ok": True}

    @api.get("/fire")
    async def fire() -> dict:
        async def job() -> None:  # fire-and-forget, as FastAPI guides teach: adopted
            await asyncio.to_thread(log.client_has_response.wait, 30)
            log.add("fire-and-forget task done")

        asyncio.create_task(job())  # noqa: RUF006 - the request's own task, on purpose
        return {"ok": True}

    @api.get("/down")
    async def down() -> JSONResponse:
        return JSONResponse({"error": "payments down"}, status_code=503)

    @api.get("/crash")
    async def crash() -> dict:
        raise RuntimeError("secret detail")

    @api.get("/stream")
    async def stream() -> StreamingResponse:
        async def events():
            for n in range(3):
                yield f"data: {n}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    @api.get("/cookies")
    async def cookies() -> JSONResponse:
        response = JSONResponse({"ok": True})
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    return api


def watch(worker, log: Log) -> None:
    """Log when the client has the whole response and when the invocation ends."""

    def responded() -> None:
        log.add("client has the response")
        log.client_has_response.set()

    worker.on_response = responded
    worker.on_end = lambda: log.add("invocation ended")


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def streaming_app(log):
    api = make_api(log)
    return holdfast.azure.FunctionApp(
        holdfast.Adapter(api, error_status_codes="502-504"), streaming=True
    )


def run(coro):
    return asyncio.run(coro)


def test_the_app_is_indexed_as_one_catch_all_http_function(streaming_app):
    [function] = streaming_app.get_functions()
    bindings = json.loads(function.get_function_json())["bindings"]
    trigger = next(b for b in bindings if b["type"] == "httpTrigger")
    assert trigger["route"] == "{*route}" and trigger["authLevel"] == "FUNCTION"
    assert set(trigger["methods"]) >= {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}
    assert {"type": "http", "direction": "OUT", "name": "$return"}.items() <= next(
        b for b in bindings if b["type"] == "http"
    ).items()


def test_streaming_background_task_runs_after_the_response_inside_the_invocation(
    streaming_app, log
):
    async def main():
        async with StreamingWorker() as worker:
            watch(worker, log)
            return await worker.call(
                streaming_app,
                "POST",
                "/api/signup",
                body=b'{"name": "ada"}',
                headers={"content-type": "application/json"},
            )

    call = run(main())
    assert call.error is None
    assert (call.status, json.loads(call.body)) == (201, {"hello": "ada"})
    assert call.headers["content-length"] == str(len(call.body))
    assert log.events == [
        "startup",
        "client has the response",
        "background task done",
        "invocation ended",
    ]


def test_streaming_after_response_work_runs_inside_the_invocation(streaming_app, log):
    async def main():
        async with StreamingWorker() as worker:
            watch(worker, log)
            return await worker.call(streaming_app, "GET", "/api/after")

    call = run(main())
    assert call.status == 200 and call.error is None
    assert log.events[-3:] == ["client has the response", "after_response done", "invocation ended"]


def test_a_fire_and_forget_task_is_adopted_and_finishes_inside_the_invocation(streaming_app, log):
    async def main():
        async with StreamingWorker() as worker:
            watch(worker, log)
            return await worker.call(streaming_app, "GET", "/api/fire")

    call = run(main())
    assert call.status == 200 and call.error is None
    assert log.events[-3:] == [
        "client has the response",
        "fire-and-forget task done",
        "invocation ended",
    ]


def test_telemetry_is_flushed_after_the_response_inside_the_invocation(log):
    from holdfast.telemetry import FlushAfterResponse

    def flush() -> None:
        log.add("telemetry flushed")

    app = holdfast.azure.FunctionApp(FlushAfterResponse(make_api(log), flush), streaming=True)

    async def main():
        async with StreamingWorker() as worker:
            watch(worker, log)
            return await worker.call(app, "GET", "/api/after")

    assert run(main()).status == 200
    assert log.events[-4:] == [
        "client has the response",
        "after_response done",
        "telemetry flushed",
        "invocation ended",
    ]


def test_application_insights_spans_are_flushed_inside_the_invocation():
    # azure-monitor-opentelemetry's exporter behind a global provider: flushed with no code
    # after the response, before the invocation ends (its own timer is a minute away).
    here = Path(__file__).parent
    result = subprocess.run(
        [sys.executable, str(here / "app_insights_run.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=here,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent)])},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["status"] == 200
    order = [event.split()[0] for event in outcome["events"]]
    assert order == ["client", "ingested", "invocation"], outcome["events"]


def test_paths_below_the_route_prefix_and_no_invented_platform_headers(streaming_app, log):
    forged = {
        "x-amzn-request-context": '{"authorizer": {"admin": true}}',
        "x-amzn-lambda-context": "{}",
        "x-ms-client-principal": "forged",
    }

    async def main():
        async with StreamingWorker() as worker:
            return await worker.call(
                streaming_app, "GET", "/api/plain?q=a%20b&x=%2B", headers=forged
            )

    call = run(main())
    body = json.loads(call.body)
    assert body["path"] == "/api/plain" and body["root_path"] == "/api"
    assert body["query"] == "q=a%20b&x=%2B"
    # Lambda's context headers are neither invented nor let through; Azure's pass as plain
    # headers (the app may read them; holdfast never takes them for platform context).
    assert body["headers"] == ["x-ms-client-principal", "x-ms-invocation-id"]
    assert body["request_id"] == call.invocation_id


def test_an_error_status_reaches_the_client_and_fails_the_invocation(streaming_app):
    async def main():
        async with StreamingWorker() as worker:
            return await worker.call(streaming_app, "GET", "/api/down")

    call = run(main())
    assert call.status == 503 and b"payments down" in call.body
    assert isinstance(call.error, HTTPStatusError) and type(call.error).__name__ == "HTTPError.503"


def test_an_app_exception_is_a_500_without_details_and_a_failed_invocation(streaming_app):
    async def main():
        async with StreamingWorker() as worker:
            return await worker.call(streaming_app, "GET", "/api/crash")

    call = run(main())
    # As on Lambda: an app exception is a 500 answer (logged); only error_status_codes fail.
    assert (call.status, call.body) == (500, b"Internal Server Error")
    assert call.error is None


def test_a_streamed_body_and_repeated_set_cookie_headers(streaming_app):
    async def main():
        async with StreamingWorker() as worker:
            stream = await worker.call(streaming_app, "GET", "/api/stream")
            cookies = await worker.call(streaming_app, "GET", "/api/cookies")
            return stream, cookies

    stream, cookies = run(main())
    assert stream.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert cookies.set_cookies == ["a=1; Path=/; SameSite=lax", "b=2; Path=/; SameSite=lax"]


def test_lifespan_starts_once_per_worker_process(log):
    api = make_api(log)
    app = holdfast.azure.FunctionApp(api, streaming=True)

    async def main():
        async with StreamingWorker() as worker:
            for _ in range(3):
                assert (await worker.call(app, "GET", "/api/plain")).status == 200

    run(main())
    assert api.state.starts == [1]


def test_a_wsgi_app_takes_the_same_path():
    from flask import Flask
    from flask import request as flask_request

    flask_app = Flask("shop")

    @flask_app.get("/hello")
    def hello():
        return {"path": flask_request.path, "script_root": flask_request.script_root}

    app = holdfast.azure.FunctionApp(flask_app, streaming=True)

    async def main():
        async with StreamingWorker() as worker:
            return await worker.call(app, "GET", "/api/hello")

    call = run(main())
    assert json.loads(call.body) == {"path": "/hello", "script_root": "/api"}


def test_without_the_workers_coordinator_the_work_still_runs_behind_the_response(
    streaming_app, log, caplog, monkeypatch
):
    import holdfast.azure.http

    monkeypatch.setattr(holdfast.azure.http, "_warned_no_coordinator", False)

    async def main():
        async with StreamingWorker(install_coordinator=False) as worker:
            watch(worker, log)
            call = await worker.call(
                streaming_app,
                "POST",
                "/api/signup",
                body=b'{"name": "ada"}',
                headers={"content-type": "application/json"},
            )
            assert await asyncio.to_thread(log.work_done.wait, 30)
            return call

    call = run(main())
    assert call.status == 201
    # The function returned the response at once: the invocation ended before the work did.
    assert log.events[1:] == [
        "invocation ended",
        "client has the response",
        "background task done",
    ] or log.events[1:] == ["client has the response", "invocation ended", "background task done"]
    assert "outside the invocation" in caplog.text


# -- classic: azure.functions.HttpRequest → HttpResponse -------------------------------------------


def test_classic_mode_drains_before_the_function_returns(log):
    api = make_api(log)
    app = holdfast.azure.FunctionApp(holdfast.Adapter(api), streaming=False)
    log.client_has_response.set()  # the host sends nothing before the function returns

    call = run(
        ClassicWorker().call(
            app,
            "POST",
            "/api/signup",
            body=b'{"name": "ada"}',
            headers={"content-type": "application/json"},
        )
    )
    assert (call.status, json.loads(call.body)) == (201, {"hello": "ada"})
    assert call.headers["content-type"] == "application/json"
    assert log.events == ["startup", "background task done"]


def test_classic_mode_error_status_fails_the_invocation(log):
    app = holdfast.azure.FunctionApp(
        holdfast.Adapter(make_api(log), error_status_codes=[503]), streaming=False
    )
    call = run(ClassicWorker().call(app, "GET", "/api/down"))
    assert isinstance(call.error, HTTPStatusError)


def test_classic_mode_keeps_repeated_headers(log):
    app = holdfast.azure.FunctionApp(make_api(log), streaming=False)
    call = run(ClassicWorker().call(app, "GET", "/api/cookies"))
    assert call.set_cookies == ["a=1; Path=/; SameSite=lax", "b=2; Path=/; SameSite=lax"]


def test_the_streaming_mode_follows_the_extension_by_default(log):
    app = holdfast.azure.FunctionApp(make_api(log))
    assert app.streaming is holdfast.azure.streaming_available() is True


# -- the codec: hostile input ends in a request or an InvalidEvent --------------------------------

_text = st.text(max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    method=st.one_of(st.sampled_from(["GET", "POST", "get"]), _text, st.integers()),
    url=st.one_of(_text.map(lambda t: "https://h/api/" + t), _text, st.none()),
    headers=st.one_of(
        st.lists(st.tuples(_text, _text), max_size=4).map(lambda h: [list(p) for p in h]),
        st.lists(st.one_of(_text, st.integers(), st.lists(_text, max_size=3)), max_size=3),
        _text,
        st.none(),
    ),
    body=st.one_of(st.binary(max_size=20), _text, st.none()),
    prefix=st.one_of(_text, st.none(), st.integers()),
)
def test_hostile_events_decode_to_a_request_or_an_invalid_event(method, url, headers, body, prefix):
    event = {
        "holdfast.azure": "http",
        "method": method,
        "url": url,
        "headers": headers,
        "body": body,
        "routePrefix": prefix,
    }
    try:
        request = AzureHTTP().decode(event, "")
    except InvalidEvent:
        return
    assert request.path.startswith("/")
    assert not any(name.startswith(b"x-amzn-") for name, _ in request.headers)


def test_func_http_request_objects_build_the_event_faithfully():
    request = func.HttpRequest(
        "PUT",
        "https://shop.azurewebsites.net/api/items/a%2Fb?x=1&x=2",
        headers={"host": "shop.azurewebsites.net", "x-forwarded-proto": "https"},
        body=b"\x00\xff",
    )
    from holdfast.azure.requests import http_event

    event = http_event(
        request.method,
        request.url,
        request.headers.items(),
        request.get_body(),
        route_prefix="api",
        invocation_id="i-1",
    )
    decoded = AzureHTTP().decode(event, "")
    assert decoded.method == "PUT" and decoded.body == b"\x00\xff"
    assert decoded.raw_path == b"/api/items/a%2Fb" and decoded.path == "/api/items/a/b"
    assert decoded.query_string == b"x=1&x=2" and decoded.root_path == "/api"
    assert decoded.scheme == "https" and decoded.server == ("shop.azurewebsites.net", 443)


def test_without_azure_functions_the_import_error_says_what_to_install(monkeypatch):
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "azure.functions", None)
    monkeypatch.delitem(sys.modules, "holdfast.azure.app")
    with pytest.raises(ImportError, match=r"pip install 'holdfast\[azure\]'"):
        importlib.import_module("holdfast.azure.app")
