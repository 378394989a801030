"""``holdfast.Adapter``: an ASGI (or WSGI) app as a Lambda handler for every HTTP event source."""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import sys
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from holdfast import extension
from holdfast import pending as _pending
from holdfast._types import ASGIApp, LambdaContext, LambdaEvent
from holdfast.bridge import BufferedSink, Exchange, ResponseSink
from holdfast.config import normalize_base_path, parse_status_codes, setting
from holdfast.engine import Engine
from holdfast.errors import InvalidEvent, http_status_error
from holdfast.lifespan import Lifespan, LifespanMode
from holdfast.pending import DEFAULT_DRAIN_MARGIN, DrainReport, PendingWork, drain_budget
from holdfast.sources import Codecs, EventCodec, HTTPResponse
from holdfast.sources._http import find_header

logger = logging.getLogger("holdfast")

#: Lambda's limit on a synchronous invocation's response payload.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
_PLAIN_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class Adapter:
    """Run an ASGI 3 app (or a WSGI app) as an AWS Lambda handler.

    ``handler = Adapter(app)`` is callable as ``handler(event, context)`` and answers API Gateway
    REST (payload 1.0) and HTTP API (2.0) events, Function URLs, ALB (single- and multi-value
    headers) and VPC Lattice (v1, v2) in the shape the event's source expects.

    Lifespan startup runs once, when the adapter is created (so a failure is an init error);
    every invocation runs on the same persistent event loop.
    """

    def __init__(
        self,
        app: ASGIApp | None = None,
        *,
        wsgi: Callable[..., Any] | None = None,
        lifespan: LifespanMode = "auto",
        base_path: str | None = None,
        text_mime_types: Iterable[str] | None = None,
        error_status_codes: str | Iterable[int] | None = None,
        exclude_headers: Iterable[str] | None = None,
        drain_margin: float = DEFAULT_DRAIN_MARGIN,
    ) -> None:
        self.app = _as_asgi(app, wsgi)
        self.base_path = normalize_base_path(
            base_path if base_path is not None else setting("BASE_PATH")
        )
        self.error_status_codes = parse_status_codes(
            error_status_codes if error_status_codes is not None else setting("ERROR_STATUS_CODES")
        )
        self.exclude_headers = frozenset(name.lower().encode() for name in exclude_headers or ())
        #: Seconds kept free before the invocation deadline when draining after-response work.
        self.drain_margin = drain_margin
        self.engine = Engine()
        self.lifespan = Lifespan(self.app, lifespan)
        self.counts = {"drained": 0, "failed": 0, "spilled": 0, "cancelled": 0}
        #: Set by a host that drains pending work itself (the after-response extension).
        self.pending_host: Callable[[PendingWork, LambdaContext], None] | None = None
        self._codecs = Codecs(frozenset(text_mime_types or ()))
        # Created inside a running loop (an async test, an app factory), the adapter cannot step
        # its own loop here: startup then runs before the first invocation instead.
        self._startup_pending = asyncio.events._get_running_loop() is not None
        if not self._startup_pending:
            self.engine.run(self.lifespan.startup())
        extension.start_for(self)
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- the Lambda handler ---------------------------------------------------------------
    def __call__(self, event: LambdaEvent, context: LambdaContext = None) -> dict[str, Any]:
        """Handle one invocation synchronously (the managed Python runtime's handler)."""
        if self._startup_pending:
            self.engine.run(self._start_lifespan_once())
        consumer = _task_consumer(event)
        if consumer is not None:
            try:
                return self.engine.run(consumer.handle_event_async(event, context))
            finally:
                self._settle(None, context)
        try:
            invocation = self.begin(event, context)
        except BaseException:
            self._settle(None, context)
            raise
        self.engine.run_until(invocation.response_ready)
        try:
            return invocation.result()
        finally:
            self._settle(invocation.pending, context)

    async def handle(
        self, event: LambdaEvent, context: LambdaContext = None, sink: ResponseSink | None = None
    ) -> Invocation:
        """Handle one invocation on the running loop (custom runtime). The caller owns the
        returned invocation's pending work: call :meth:`Invocation.result`, deliver it, then
        drain ``invocation.pending``."""
        if asyncio.get_running_loop() is not self.engine.loop:
            # The app's task would wait on a loop nobody steps: refuse instead of hanging.
            raise RuntimeError(
                "Adapter.handle() must run on the adapter's own loop (adapter.engine.loop);"
                " from another event loop, call the handler in a thread:"
                " await asyncio.to_thread(handler, event, context)"
            )
        await self._start_lifespan_once()
        invocation = self.begin(event, context, sink)
        await invocation.wait_response()
        return invocation

    async def _start_lifespan_once(self) -> None:
        if self._startup_pending:
            self._startup_pending = False
            await self.lifespan.startup()

    async def handle_tasks(self, event: LambdaEvent, context: LambdaContext) -> Any:
        """Run a task-queue event (SQS messages of holdfast tasks, a schedule) and return the
        answer for Lambda; ``None`` when ``event`` is not one (custom runtime)."""
        consumer = _task_consumer(event)
        if consumer is None:
            return None
        return await consumer.handle_event_async(event, context)

    def begin(
        self, event: LambdaEvent, context: LambdaContext, sink: ResponseSink | None = None
    ) -> Invocation:
        """Decode ``event`` and start the app on it (on the loop, not yet stepped)."""
        codec = self._codecs.detect(event)
        return Invocation(self, codec, event, context, sink or BufferedSink())

    # -- after the response ---------------------------------------------------------------
    def _settle(self, pending: PendingWork | None, context: LambdaContext) -> None:
        if self.pending_host is not None:
            # The host waits for every invocation's hand-over, even one that failed to decode.
            if pending is None:
                pending = PendingWork(getattr(context, "aws_request_id", "-"), self.engine.loop)
            self.pending_host(pending, context)
        elif pending:
            # No host drains after the handler returns: finish the work before returning, so
            # nothing is lost (the response waits, as it does under Mangum).
            self.record(self.engine.run(pending.drain(self.drain_timeout(context))))

    def drain_timeout(self, context: LambdaContext) -> float | None:
        return drain_budget(context, self.drain_margin)

    def record(self, report: DrainReport) -> None:
        self.counts["drained"] += report.drained
        self.counts["failed"] += report.failed
        self.counts["spilled"] += report.spilled
        self.counts["cancelled"] += len(report.cancelled)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Run lifespan shutdown (hosts call this when the environment ends)."""
        await self.lifespan.shutdown(timeout)

    def close(self, timeout: float = 1.0) -> None:
        """Run lifespan shutdown, cancel what is still running and close the loop (idempotent).

        Called at interpreter exit for adapters nobody closed; Lambda hosts use SIGTERM instead.
        """
        loop = self.engine.loop
        if loop.is_closed() or asyncio.events._get_running_loop() is not None:
            return
        try:
            self.engine.run(self.shutdown(timeout))
        except Exception:
            logger.exception("lifespan shutdown failed")
        leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            self.engine.run(asyncio.wait(leftovers, timeout=timeout))
        self.engine.close()


class Invocation:
    """One HTTP event through the app: the scope, the exchange, the app's task, pending work."""

    __slots__ = ("adapter", "codec", "exchange", "method", "pending", "request_id", "sink", "task")

    def __init__(
        self,
        adapter: Adapter,
        codec: EventCodec,
        event: LambdaEvent,
        context: LambdaContext,
        sink: ResponseSink,
    ) -> None:
        try:
            request = codec.decode(event, adapter.base_path, context)
        except (AttributeError, TypeError) as exc:  # e.g. a list where an object belongs
            raise InvalidEvent(f"{codec.name} event: a field has the wrong type: {exc}") from exc
        if request.body and find_header(request.headers, b"content-length") is None:
            # Sources may drop the header; WSGI apps read exactly Content-Length bytes.
            request.headers.append((b"content-length", b"%d" % len(request.body)))
        loop = adapter.engine.loop
        self.adapter = adapter
        self.codec = codec
        self.sink = sink
        self.method = request.method
        self.request_id = _request_id(event, context)
        self.exchange = Exchange(request.body, sink, loop, head=request.method == "HEAD")
        self.pending = PendingWork(self.request_id, loop)
        scope = {
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
            "state": adapter.lifespan.state.copy(),
            "aws.event": event,
            "aws.context": context,
        }
        # The task copies the current context: bind the pending-work set just around its creation.
        token = _pending.bind(self.pending)
        try:
            coro = adapter.app(scope, self.exchange.receive, self.exchange.send)
            self.task = loop.create_task(coro)  # type: ignore[arg-type]
        finally:
            _pending.unbind(token)

    def response_ready(self) -> bool:
        return self.exchange.complete or self.task.done()

    async def wait_response(self) -> None:
        if not self.response_ready():
            await asyncio.wait(
                (self.task, self.exchange.completion()), return_when=asyncio.FIRST_COMPLETED
            )

    def result(self) -> dict[str, Any]:
        """The Lambda response for the event's source, or a raised function error.

        From here on the app's remaining coroutine (if any) is pending work.
        """
        response = self._response()
        if self.adapter.exclude_headers:
            excluded = self.adapter.exclude_headers
            response.headers = [(k, v) for k, v in response.headers if k not in excluded]
        result = self.codec.encode(response)
        if self.codec.too_large(result):
            logger.error(
                "request %s: the response (status %d) exceeds the %d-byte payload limit of %s;"
                " answering 413 instead",
                self.request_id,
                response.status,
                self.codec.max_response_bytes,
                self.codec.name,
            )
            response = HTTPResponse(413, list(_PLAIN_TEXT), b"Response payload too large")
            result = self.codec.encode(response)
        if response.status in self.adapter.error_status_codes:
            raise http_status_error(response.status, response.body.decode("utf-8", "replace"))
        return result

    def _response(self) -> HTTPResponse:
        task = self.task
        if not task.done():
            self.pending.track(task, "the app after its response")
        elif not task.cancelled() and task.exception() is not None:
            return self._failed(task.exception())
        if not self.exchange.complete:
            if task.cancelled():
                return self._failed(asyncio.CancelledError())
            logger.error(
                "request %s: the app returned without a complete response", self.request_id
            )
            return _error_response()
        sink = self.sink
        if isinstance(sink, BufferedSink):
            return sink.response()
        return HTTPResponse(0, [], b"")  # streamed: the sink delivered it already

    def _failed(self, exc: BaseException) -> HTTPResponse:
        if self.exchange.complete:
            logger.error(
                "request %s: the app raised after its response was complete",
                self.request_id,
                exc_info=exc,
            )
            if isinstance(self.sink, BufferedSink):
                return self.sink.response()
            return HTTPResponse(0, [], b"")  # streamed: the sink delivered it already
        logger.error("request %s: the app raised an exception", self.request_id, exc_info=exc)
        return _error_response()


# Only events with one of these keys can be for the task queue; HTTP events have none.
_TASK_EVENT_KEYS = ("Records", "detail-type", "holdfast")


def _task_consumer(event: Any) -> Any:
    """``holdfast.tasks.lambda_consumer`` when ``event`` is for it, else ``None``.

    The task queue is imported only by apps that define one, so the check costs HTTP events
    nothing and the adapter core needs nothing beyond the standard library.
    """
    if "holdfast.tasks" not in sys.modules or type(event) is not dict:
        return None
    if not any(key in event for key in _TASK_EVENT_KEYS):
        return None
    from holdfast.tasks import lambda_consumer

    return lambda_consumer if lambda_consumer.is_task_event(event) else None


def _close_at_exit(ref: weakref.ref[Adapter]) -> None:
    adapter = ref()
    if adapter is not None:
        adapter.close()


def _error_response() -> HTTPResponse:
    # Clients get no traceback; the log carries it with the request id.
    return HTTPResponse(500, list(_PLAIN_TEXT), b"Internal Server Error")


def _request_id(event: LambdaEvent, context: LambdaContext) -> str:
    request_id = getattr(context, "aws_request_id", None)
    if request_id:
        return str(request_id)
    request_context = event.get("requestContext")
    if isinstance(request_context, dict) and request_context.get("requestId"):
        return str(request_context["requestId"])
    return "-"


def _as_asgi(app: Any, wsgi: Any) -> ASGIApp:
    if (app is None) == (wsgi is None):
        raise TypeError("pass exactly one of an ASGI app or wsgi=<WSGI app>")
    if wsgi is None and not _looks_like_wsgi(app):
        return app  # type: ignore[no-any-return]
    try:
        from a2wsgi import WSGIMiddleware
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("WSGI apps need a2wsgi: pip install 'holdfast[wsgi]'") from None
    return WSGIMiddleware(wsgi if wsgi is not None else app)  # type: ignore[return-value]


def _looks_like_wsgi(app: Any) -> bool:
    """WSGI callables take ``(environ, start_response)``; ASGI ones ``(scope, receive, send)``."""
    call = app if inspect.isroutine(app) else getattr(app, "__call__", None)  # noqa: B004
    if call is None or inspect.iscoroutinefunction(call):
        return False
    try:
        parameters = inspect.signature(call).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 2
