"""One event through the adapter: :class:`Invocation`, dispatched once, answered as one
:data:`~holdfast.outcome.Outcome`, its after-response work drained.

Every host drives an invocation through the same four steps::

    invocation = adapter.begin(event, context)   # dispatch once, start the app (on the loop)
    outcome = await invocation.outcome()         # Buffered | Streamed | Failed
    ...deliver the outcome...
    invocation.handed_over()                     # only now does the app's final send return
    await invocation.drain(timeout)              # the after-response work, bounded

The synchronous handler (:meth:`holdfast.Adapter.__call__`) takes the same steps stepping the
adapter's loop itself: :meth:`Invocation.ready` is what it steps the loop until, and
:meth:`Invocation.settle` its cheap check that nothing is left to drain.

Where the response goes while the app produces it is the exchange's sink
(:mod:`holdfast.bridge`): buffered or streamed, behind one interface, so nothing here branches on
which one it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any

from holdfast import adoption, telemetry
from holdfast._types import LambdaContext, Receive, Scope, Send
from holdfast.bridge import AppEnded, BufferedSink, Exchange, StreamSink
from holdfast.dispatch import OTHER_SOURCES, WARMER, call, describe, dispatch
from holdfast.errors import InvalidEvent, LifespanError, http_status_error
from holdfast.outcome import Buffered, Failed, Outcome, Streamed
from holdfast.pending import DrainReport, PendingWork
from holdfast.sources import BadRequest, EventCodec, HTTPRequest, HTTPResponse
from holdfast.sources.limits import clearly_within

if TYPE_CHECKING:
    from holdfast.adapter import Adapter

__all__ = ["Invocation"]

logger = logging.getLogger("holdfast")

_PLAIN_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class Invocation:
    """One event through the adapter: dispatched once, answered as one :data:`Outcome`, its
    after-response work drained.

    The host API: :attr:`request_id`, :attr:`kind`, :attr:`context`, :meth:`outcome` (or, for
    the synchronous handler stepping the loop, :meth:`ready`), :meth:`handed_over`,
    :meth:`drain` (or, synchronously, :meth:`settle` first), :attr:`idle`.
    """

    __slots__ = (
        "_codec",
        "_exchange",
        "_failed",
        "_outcome",
        "_settled",
        "_sink",
        "_streaming",
        "adapter",
        "context",
        "event",
        "kind",
        "pending",
        "request_id",
        "task",
    )

    def __init__(
        self, adapter: Adapter, event: Any, context: LambdaContext, *, streaming: bool
    ) -> None:
        self.adapter = adapter
        self.event = event
        self.context = context
        self.kind = dispatch(event, adapter.codecs)
        self.request_id = _request_id(event, context)
        self.pending = PendingWork(
            self.request_id,
            adapter.engine.loop,
            adopts=False,  # the app's own task is not adopted: set once it is created
            margin=adapter.drain_margin,
        )
        self.pending.context = context
        if adapter.flush_telemetry:
            telemetry.flush_in_use(self.pending)
        #: The app's (or the event handler's) task; ``None`` when the answer needed none.
        self.task: asyncio.Task[Any] | None = None
        self._streaming = streaming
        self._outcome: Outcome | None = None
        self._codec: EventCodec | None = None
        self._exchange: Exchange | None = None
        self._sink: BufferedSink | StreamSink | None = None
        # Whether the app's task is settled: its outcome (a handler's result, a failure before
        # a complete response) or tracked as after-response work.
        self._settled = False
        self._failed = 0  # the app failed after its response, before the drain
        if self.kind.codec is not None:
            self._start_http(self.kind.codec)
        else:
            self._start_handler()

    # -- starting -------------------------------------------------------------------------------
    def _start_http(self, codec: EventCodec) -> None:
        adapter = self.adapter
        try:
            request = codec.decode(self.event, adapter.base_path, self.context)
        except BadRequest as exc:  # a request no server accepts: answered as a server would
            logger.warning("request %s: answering 400: %s", self.request_id, exc)
            self._codec = codec
            self._outcome = self._answer(HTTPResponse(400, list(_PLAIN_TEXT), b"Bad Request"))
            return
        except InvalidEvent as exc:  # codecs raise nothing else; Content-Length is set
            self._outcome = Failed.from_exception(exc)
            return
        loop = adapter.engine.loop
        sink: BufferedSink | StreamSink = (
            StreamSink(loop, adapter.error_status_codes) if self._streaming else BufferedSink(loop)
        )
        exchange = Exchange(request.body, sink, loop, head=request.method == "HEAD")
        self._codec, self._sink, self._exchange = codec, sink, exchange
        scope = http_scope(request, self.event, self.context, adapter.lifespan.state.copy())
        if adapter.started:
            coro = adapter.app(scope, exchange.receive, exchange.send)
        else:
            coro = _start_then_serve(adapter, scope, exchange.receive, exchange.send)
        self._create_task(coro)

    def _start_handler(self) -> None:
        name = self.kind.name
        # The app's own handler first; else the one of the component that claimed the kind.
        handler = self.adapter.handler_for(self.kind, self.event) or self.kind.handler
        if handler is None:
            if name == WARMER:
                self._outcome = Buffered({})  # warm now: nothing to run
            elif name in OTHER_SOURCES:
                # As the Lambda Web Adapter does: POST the event to the app. The answer is a
                # JSON document, never streamed.
                from holdfast.events import PassThrough

                self._streaming = False
                self._start_http(PassThrough(self.adapter.pass_through_path))
            else:
                self._outcome = Failed.from_exception(InvalidEvent(describe(self.event)))
            return
        self._create_task(call(handler, self.event, self.context))

    def _create_task(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        adapter = self.adapter
        task = adoption.start_request(
            adapter.engine.loop, coro, self.pending, adopts=adapter.adopt_tasks
        )
        self.task = task
        return task

    # -- the outcome ----------------------------------------------------------------------------
    def ready(self) -> bool:
        """Whether the outcome is decided or decidable: :meth:`outcome` would not wait."""
        if self._outcome is not None:
            return True
        task = self.task
        if task is None or task.done():
            return True
        exchange, sink = self._exchange, self._sink
        if exchange is None or sink is None:
            return False
        return exchange.complete or sink.streaming

    async def outcome(self) -> Outcome:
        """The answer: buffered (the response complete), streamed (its head ready) or failed.

        A synchronous caller steps the loop until :meth:`ready` instead; this then returns at
        once (``adapter.engine.run(invocation.outcome())`` would cost a task)."""
        if not self.ready():
            # The app's task was scheduled when it began, so it runs first: a plain endpoint is
            # done after this one step, which costs less than waiting on futures for it.
            await asyncio.sleep(0)
            sink, task = self._sink, self.task
            if sink is None and not self.ready():  # an event handler: its task's end decides
                assert task is not None
                await asyncio.wait((task,))
            while not self.ready():
                assert sink is not None and task is not None  # an app's response keeps it
                await sink.wait(task)
        return self.decided()

    def decided(self) -> Outcome:
        """The outcome once :meth:`ready` (what :meth:`outcome` returns)."""
        if self._outcome is None:
            self._outcome = self._decide()
        return self._outcome

    def _decide(self) -> Outcome:
        task = self.task
        assert task is not None
        exchange, sink = self._exchange, self._sink
        if exchange is None or sink is None:
            self._settled = True  # whatever it raised is the outcome
            return self._handler_outcome(task)
        if sink.streaming:
            # A failure from here on truncates the stream; the drain logs it.
            return self._streamed(sink.status, sink.headers, self._stream_body(sink, task))
        if exchange.complete:
            return self._answer(sink.response())
        self._settled = True  # whatever it raised is the outcome
        return self._answer(self._failure_response(task))

    def _handler_outcome(self, task: asyncio.Task[Any]) -> Outcome:
        if task.cancelled():
            cancelled = RuntimeError(f"the {self.kind.name} handler was cancelled")
            return Failed.from_exception(cancelled)
        error = task.exception()
        if error is not None:
            logger.error(
                "request %s: the %s handler raised", self.request_id, self.kind.name, exc_info=error
            )
            return Failed.from_exception(error)
        return Buffered(task.result())

    def _failure_response(self, task: asyncio.Task[Any]) -> HTTPResponse | Failed:
        """The answer when the app's task ended without a complete response."""
        if task.cancelled():
            logger.error("request %s: the app was cancelled", self.request_id)
        elif task.exception() is not None:
            error = task.exception()
            if isinstance(error, LifespanError):  # deferred startup failed: not a 500
                return Failed.from_exception(error)
            logger.error("request %s: the app raised an exception", self.request_id, exc_info=error)
        else:
            logger.error(
                "request %s: the app returned without a complete response", self.request_id
            )
        # Clients get no traceback; the log carries it with the request id.
        return HTTPResponse(500, list(_PLAIN_TEXT), b"Internal Server Error")

    def _answer(self, response: HTTPResponse | Failed) -> Outcome:
        """A whole response as the outcome for the event's source."""
        if isinstance(response, Failed):
            return response
        adapter = self.adapter
        if response.status in adapter.error_status_codes:
            body = response.body.decode("utf-8", "replace")
            return Failed.from_exception(http_status_error(response.status, body))
        if self._streaming:
            return self._streamed(response.status, response.headers, _one_chunk(response.body))
        if adapter.exclude_headers:
            response.headers = _without(response.headers, adapter.exclude_headers)
        codec = self._codec
        assert codec is not None
        try:
            result = codec.encode(response)
        except InvalidEvent as exc:  # a pass-through POST the app has no route for
            return Failed.from_exception(exc)
        if not clearly_within(response.headers, response.body, codec.max_response_bytes) and (
            codec.too_large(result)
        ):
            logger.error(
                "request %s: the response (status %d) exceeds the %d-byte payload limit of %s;"
                " answering 413 instead",
                self.request_id,
                response.status,
                codec.max_response_bytes,
                codec.name,
            )
            response = HTTPResponse(413, list(_PLAIN_TEXT), b"Response payload too large")
            if response.status in adapter.error_status_codes:
                return Failed.from_exception(http_status_error(413, "Response payload too large"))
            result = codec.encode(response)
        return Buffered(result)

    def _streamed(self, status: int, headers: list[tuple[bytes, bytes]], body: Any) -> Streamed:
        adapter = self.adapter
        if adapter.exclude_headers:
            headers = _without(headers, adapter.exclude_headers)
        # The head as a Function URL (payload 2.0) carries it: one codec decides that.
        encoded = adapter.codecs.apigw_v2.encode(HTTPResponse(status, headers, b""))
        return Streamed(status, encoded["headers"], list(encoded.get("cookies", [])), body)

    @staticmethod
    async def _stream_body(
        sink: BufferedSink | StreamSink, task: asyncio.Task[Any]
    ) -> AsyncIterator[bytes]:
        while True:
            try:
                chunk = await sink.take(task)
            except AppEnded:
                raise _ended(task) from None
            if chunk is None:
                return
            yield chunk

    # -- after the response ---------------------------------------------------------------------
    def handed_over(self) -> None:
        """The host has delivered the response: the app's final ``send`` may now return, so its
        code after the last body chunk runs from here on (as after-response work)."""
        exchange, sink = self._exchange, self._sink
        if exchange is not None and sink is not None:
            exchange.hand_over()
            sink.release()  # a body the host did not read to its end is not waited for

    @property
    def idle(self) -> bool:
        """Whether nothing at all is owed after the response (a host may then ask for the next
        event in the same breath as it answers)."""
        task = self.task
        return (task is None or task.done()) and not self.pending

    def settle(self) -> bool:
        """For the synchronous handler, once the response is handed over, from no running loop:
        let the app return from its final send now (one pass of the loop) and adopt what it
        still runs as after-response work; whether nothing is left to drain."""
        if not self._settled:
            if self._app_waits():
                self.adapter.engine.step()
            self._adopt_app_task()
            if self._failed and self.idle:  # no drain follows to report it
                self.adapter.record(DrainReport(failed=self._take_failed()))
        return self.idle

    async def drain(self, timeout: float | None) -> DrainReport:
        """Finish the after-response work, at most ``timeout`` seconds (see
        :meth:`Adapter.drain_timeout`), cancel what is left over; counted in ``adapter.counts``."""
        self.handed_over()
        if not self._settled:
            if self._app_waits():
                await asyncio.sleep(0)  # the app's final send returns and runs to its next await
            self._adopt_app_task()
        if self.pending:
            report = await self.pending.drain(timeout)
        else:
            report = DrainReport()
            self.pending.name_threads_left()
        report.failed += self._take_failed()
        self.adapter.record(report)
        return report

    def _app_waits(self) -> bool:
        task = self.task
        return task is not None and self._exchange is not None and not task.done()

    def _take_failed(self) -> int:
        failed, self._failed = self._failed, 0
        return failed

    def _adopt_app_task(self) -> None:
        """The app's code after its final ``send`` becomes after-response work, unless it has
        ended already (a plain endpoint has): only real work is counted. An app that already
        failed after its response is counted as one failure."""
        self._settled = True
        task = self.task
        if task is None or self._exchange is None:
            return
        if self._streaming:
            failure = "the app raised during or after its streamed response"
        else:
            failure = "the app raised after its response was complete"
        if not task.done():
            # Logged as "after-response work <this> did not finish ...": it must read as such.
            what = "in the app's request (BackgroundTasks, code after its final send)"
            self.pending.track(task, what, failure=failure)
        elif not task.cancelled() and task.exception() is not None:
            logger.error("request %s: %s", self.request_id, failure, exc_info=task.exception())
            self._failed = 1


def http_scope(
    request: HTTPRequest, event: Any, context: LambdaContext, state: dict[str, Any]
) -> Scope:
    """The ASGI ``http`` scope of ``request``, with ``state`` (the request's own copy of the
    lifespan state) and the event and context it came in as ``aws.event`` and ``aws.context``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path,
        "root_path": request.root_path,
        "query_string": request.query_string,
        "headers": request.headers,
        "server": request.server,
        "client": request.client,
        "state": state,
        "aws.event": event,
        "aws.context": context,
    }


async def _start_then_serve(adapter: Adapter, scope: Scope, receive: Receive, send: Send) -> None:
    """The app on a request that came before the (deferred) lifespan startup finished."""
    await adapter.startup()
    scope["state"] = adapter.lifespan.state.copy()
    await adapter.app(scope, receive, send)


async def _one_chunk(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _ended(task: asyncio.Task[Any]) -> Exception:
    """Why a streamed body ended early, as the error the host reports in the stream."""
    if task.cancelled():
        return RuntimeError("the app was cancelled during its response")
    error = task.exception()
    if isinstance(error, Exception):
        return error
    return RuntimeError("the app ended without completing its response")


def _without(headers: list[tuple[bytes, bytes]], excluded: frozenset[bytes]) -> Any:
    return [(name, value) for name, value in headers if name not in excluded]


def _request_id(event: Any, context: LambdaContext) -> str:
    request_id = getattr(context, "aws_request_id", None)
    if request_id:
        return str(request_id)
    request_context = event.get("requestContext") if isinstance(event, dict) else None
    if isinstance(request_context, dict) and request_context.get("requestId"):
        return str(request_context["requestId"])
    return "-"
