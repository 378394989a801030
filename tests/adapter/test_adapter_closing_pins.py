"""Pins on the adapter's edges a fault would otherwise pass unnoticed: closing (an adapter closed
at interpreter exit, from inside a running loop, its leftover tasks and async generators
finished), the hand-over when a host drains, lifespan before a first non-HTTP event, the
decorators of ``on`` and the WSGI detection's corners.

Every wait is bounded (``close(timeout=...)``, ``asyncio.wait_for``): a fault fails, never hangs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import weakref
from typing import Any

import pytest
from adapter_apps import serve_lifespan
from adapter_events import load_event

import holdfast
from holdfast import adapter as adapter_module
from holdfast.adapter import app_kind

HTTP_EVENT = "apigateway-http-api"


class Lifecycle:
    """An ASGI app recording its lifespan, answering every request with ``ok``; ``after`` runs
    right after its final ``send`` (the code a plain endpoint has after its response)."""

    def __init__(
        self, *, shutdown_steps: int = 0, shutdown_pause: float = 0.0, fail_shutdown: bool = False
    ) -> None:
        self.messages: list[str] = []
        self.shutdown_pause = shutdown_pause
        self.after: list[str] = []
        self.shutdown_steps = shutdown_steps
        self.fail_shutdown = fail_shutdown
        self.on_startup: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.messages.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if self.on_startup is not None:
                        self.on_startup()
                    await send({"type": "lifespan.startup.complete"})
                else:
                    for _ in range(self.shutdown_steps):
                        await asyncio.sleep(0)
                    if self.shutdown_pause:
                        await asyncio.sleep(self.shutdown_pause)
                    if self.fail_shutdown:
                        await send({"type": "lifespan.shutdown.failed", "message": "boom"})
                    else:
                        await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        self.after.append(scope["path"])


@pytest.fixture
def fresh_exit_set(monkeypatch):
    """The adapters to close at exit, emptied for this test: closing them closes only its own."""
    monkeypatch.setattr(adapter_module, "_open_adapters", weakref.WeakSet())


# -- closing at interpreter exit ------------------------------------------------------------------
def test_an_adapter_used_is_closed_at_exit(fresh_exit_set):
    app = Lifecycle()
    handler = holdfast.Adapter(app)
    handler(load_event(HTTP_EVENT))
    adapter_module._close_open_adapters()  # what the interpreter runs before joining threads
    assert app.messages == ["lifespan.startup", "lifespan.shutdown"]
    assert not handler.engine.started


def test_an_adapter_started_from_async_code_is_closed_at_exit(fresh_exit_set):
    app = Lifecycle()
    handler = holdfast.Adapter(app)
    handler.engine.run(handler.startup())  # as a host does: no sync call, no begin
    adapter_module._close_open_adapters()
    assert app.messages == ["lifespan.startup", "lifespan.shutdown"]


def test_an_adapter_that_only_began_an_event_is_closed_at_exit(fresh_exit_set):
    handler = holdfast.Adapter(Lifecycle(), lifespan="off")
    handler.on("sqs")(lambda event, context: "done")
    invocation = handler.begin(load_event("sqs-receive-message"))
    handler.engine.run_until(invocation.ready)
    assert invocation.decided().payload == "done"  # type: ignore[union-attr]
    adapter_module._close_open_adapters()
    assert not handler.engine.started


def test_closing_at_exit_is_hooked_in_once_before_threads_are_joined():
    # atexit would run after the interpreter joined the app's worker threads, which may wait
    # on the adapter's loop: the hook must be in threading's own exit list, and only once.
    for _ in range(2):
        handler = holdfast.Adapter(Lifecycle())
        handler(load_event(HTTP_EVENT))
        handler.close()
    hooks = [_registered(hook) for hook in threading._threading_atexits]  # type: ignore[attr-defined]
    assert hooks.count(adapter_module._close_open_adapters) == 1


def _registered(hook: Any) -> Any:
    """The function behind an entry of threading's exit list: Python 3.11 keeps a
    functools.partial, 3.13 a lambda closing over the function."""
    if hasattr(hook, "func"):
        return hook.func
    cells = [cell.cell_contents for cell in hook.__closure__ or ()]
    return next((value for value in cells if callable(value)), hook)


def test_closing_an_adapter_never_called_starts_nothing():
    app = Lifecycle()
    handler = holdfast.Adapter(app)
    handler.close()
    assert app.messages == []  # no lifespan for an app never started
    assert handler.engine._loop is None  # an adapter nobody called owns no loop, even closed


# -- closing: from a running loop, what is left over ----------------------------------------------
def test_an_adapter_closes_from_inside_a_running_loop():
    # The pause makes the closing thread wait on a timer: close() must still wait for it.
    app = Lifecycle(shutdown_steps=3, shutdown_pause=0.01)
    handler = holdfast.Adapter(app)
    handler(load_event(HTTP_EVENT))

    async def close_from_async_code() -> bool:
        handler.close(timeout=5)
        return handler.engine.started

    assert asyncio.run(close_from_async_code()) is False  # closed when close() returns
    assert app.messages == ["lifespan.startup", "lifespan.shutdown"]


def test_the_default_close_timeout_lets_a_shutdown_take_a_few_steps():
    app = Lifecycle(shutdown_steps=3)
    handler = holdfast.Adapter(app)
    handler(load_event(HTTP_EVENT))
    handler.close()
    assert app.messages == ["lifespan.startup", "lifespan.shutdown"]


def test_a_failing_shutdown_at_close_is_logged_and_the_loop_still_closes(caplog):
    handler = holdfast.Adapter(Lifecycle(fail_shutdown=True))
    handler(load_event(HTTP_EVENT))
    with caplog.at_level(logging.ERROR, logger="holdfast"):
        handler.close()
    assert "lifespan shutdown failed" in caplog.text
    assert not handler.engine.started


def test_tasks_left_running_are_cancelled_and_finish_their_cleanup_at_close():
    cleaned: list[str] = []

    async def poll_forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:  # cleanup that itself awaits: it needs the loop after the cancellation
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            cleaned.append("poller")

    app = Lifecycle()
    tasks: list[asyncio.Task[None]] = []
    app.on_startup = lambda: tasks.append(asyncio.ensure_future(poll_forever()))
    handler = holdfast.Adapter(app)
    handler(load_event(HTTP_EVENT))
    handler.close(timeout=5)
    assert cleaned == ["poller"]
    assert tasks[0].cancelled()


def test_async_generators_left_suspended_are_finalized_at_close():
    finalized: list[str] = []
    kept: list[Any] = []

    async def rows() -> Any:
        try:
            yield 1
            yield 2
        finally:
            finalized.append("rows")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        generator = rows()
        await generator.__anext__()  # left suspended, still referenced
        kept.append(generator)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    handler = holdfast.Adapter(app)
    handler(load_event(HTTP_EVENT))
    handler.close(timeout=5)
    assert finalized == ["rows"]


# -- the hand-over ---------------------------------------------------------------------------------
def test_without_a_drainer_code_after_the_final_send_runs_before_the_handler_returns():
    app = Lifecycle()
    handler = holdfast.Adapter(app)
    handler(load_event(HTTP_EVENT))
    assert app.after  # ran at once, as under Mangum: nothing left to drain
    assert handler.counts["drained"] == 0
    handler.close()


def test_with_a_drainer_code_after_the_final_send_waits_for_the_hand_over():
    app = Lifecycle()
    handler = holdfast.Adapter(app)
    given: list[Any] = []
    handler.drainer = given.append  # a host that drains once the runtime has the response
    result = handler(load_event(HTTP_EVENT))
    assert result["body"] == "ok"
    assert app.after == []  # the response was not out yet when the app's final send returned
    assert len(given) == 1
    # Handed over: the next pass of the loop (the next invocation's, say) lets the app go on.
    handler(load_event(HTTP_EVENT))
    assert len(app.after) == 1
    for invocation in given:
        handler.engine.run(invocation.drain(5.0))
    assert len(app.after) == 2
    handler.close()


# -- lifespan before the first event of any kind --------------------------------------------------
def test_lifespan_starts_before_a_first_event_handler_runs():
    app = Lifecycle()
    handler = holdfast.Adapter(app)
    seen: list[list[str]] = []
    handler.on("sqs")(lambda event, context: seen.append(list(app.messages)))
    handler(load_event("sqs-receive-message"))
    assert seen == [["lifespan.startup"]]
    handler.close()


# -- registration and detection -------------------------------------------------------------------
def test_the_on_decorators_return_the_handler_itself():
    handler = holdfast.Adapter(Lifecycle())

    def on_sqs(event: Any, context: Any) -> str:
        return "sqs"

    def on_ping(event: Any, context: Any) -> str:
        return "ping"

    assert handler.on("sqs")(on_sqs) is on_sqs
    assert handler.on(lambda event: "ping" in event)(on_ping) is on_ping


def test_the_app_as_given_is_kept():
    def wsgi_app(environ: Any, start_response: Any) -> Any:
        return []

    asgi_app = Lifecycle()
    assert holdfast.Adapter(asgi_app).given is asgi_app
    assert holdfast.Adapter(wsgi=wsgi_app).given is wsgi_app
    assert holdfast.Adapter(wsgi_app).given is wsgi_app


def test_a_wsgi_app_without_a2wsgi_says_what_to_install(monkeypatch):
    def wsgi_app(environ: Any, start_response: Any) -> Any:
        return []

    monkeypatch.setitem(sys.modules, "a2wsgi", None)  # not installed
    with pytest.raises(ImportError, match="pip install a2wsgi"):
        holdfast.Adapter(wsgi=wsgi_app)


def test_a_callable_without_a_readable_signature_is_taken_for_asgi():
    assert app_kind(min) == "asgi"  # a C function: no signature to read
    assert app_kind(min, handlers=True) == "asgi"


def test_a_wsgi_app_given_as_wsgi_gets_no_header_whose_name_holds_an_underscore():
    def environ_keys(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [" ".join(sorted(environ)).encode()]

    event = load_event(HTTP_EVENT)
    event["headers"]["x_api_key"] = "forged"  # one environ key with X-Api-Key: dropped
    handler = holdfast.Adapter(wsgi=environ_keys)
    body = handler(event)["body"]
    assert "HTTP_X_API_KEY" not in body.split()
    handler.close()


# -- the defaults --------------------------------------------------------------------------------
def test_tasks_the_app_starts_are_waited_for_by_default():
    finished: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return

        async def later() -> None:
            for _ in range(3):
                await asyncio.sleep(0)
            finished.append("later")

        asyncio.ensure_future(later())  # noqa: RUF006  # never awaited: the point
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    handler = holdfast.Adapter(app)
    handler(load_event(HTTP_EVENT))
    assert finished == ["later"]
    assert handler.flush_telemetry is True  # the telemetry flush is on by default too
    handler.close()


def test_an_adapter_dropped_unclosed_is_closed_when_collected():
    cleaned: list[str] = []

    async def poll_forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)
            cleaned.append("poller")

    app = Lifecycle(shutdown_steps=3)
    app.on_startup = lambda: asyncio.ensure_future(poll_forever())
    handler = holdfast.Adapter(app)
    handler(load_event(HTTP_EVENT))
    engine = handler.engine
    del handler
    gc.collect()
    assert app.messages == ["lifespan.startup", "lifespan.shutdown"]
    assert cleaned == ["poller"]  # its leftovers were given time to end
    assert not engine.started
