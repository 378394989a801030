"""``holdfast.Adapter``: an ASGI (or WSGI) app as a Lambda handler for every HTTP event source.

The adapter turns events into ASGI calls and answers as one typed :mod:`holdfast.outcome`;
hosts own the plumbing around it. A host drives one invocation as::

    invocation = adapter.begin(event, context)   # dispatch once, start the app (on the loop)
    outcome = await invocation.outcome()         # Buffered | Streamed | Failed
    ...deliver the outcome...
    invocation.handed_over()                     # only now does the app's final send return
    await invocation.drain(timeout)              # the after-response work, bounded

The synchronous ``adapter(event, context)`` (what awslambdaric calls) does the same, stepping the
adapter's loop itself, and hands the invocation to the managed-runtime host (the after-response
extension) or, with no host, drains before returning.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
import weakref
from asyncio import events
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

from holdfast import config, extension, rewrite
from holdfast import pending as _pending
from holdfast._types import ASGIApp, LambdaContext, Receive, Scope, Send
from holdfast.bridge import AppEnded, BufferedSink, Exchange, StreamSink
from holdfast.dispatch import (
    OTHER_SOURCES,
    TASK_MESSAGES,
    TASK_SCHEDULE,
    WARMER,
    EventKind,
    call,
    describe,
    dispatch,
)
from holdfast.engine import Engine
from holdfast.errors import InvalidEvent, LifespanError, http_status_error
from holdfast.lifespan import Lifespan, LifespanMode
from holdfast.outcome import Buffered, Failed, Outcome, Streamed
from holdfast.pending import DEFAULT_DRAIN_MARGIN, DrainReport, PendingWork, drain_budget
from holdfast.sources import BadRequest, Codecs, EventCodec, HTTPResponse

__all__ = ["Adapter", "EventHandler", "Invocation", "as_asgi", "is_wsgi"]

logger = logging.getLogger("holdfast")

_PLAIN_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]

#: ``handler(event, context)`` for a kind of non-HTTP event; may be ``async``.
EventHandler = Callable[[Any, LambdaContext], Any]
H = TypeVar("H", bound=EventHandler)


class Adapter:
    """Run an ASGI 3 app (or a WSGI app) as an AWS Lambda handler.

    ``handler = Adapter(app)`` is callable as ``handler(event, context)`` and answers API Gateway
    REST (payload 1.0) and HTTP API (2.0) events, Function URLs, ALB (single- and multi-value
    headers) and VPC Lattice (v1, v2) in the shape the event's source expects.

    Lifespan startup runs once. On Lambda (``AWS_LAMBDA_RUNTIME_API`` set) it runs when the
    adapter is created, in the init phase, so a failure is an init error; anywhere else creating
    an adapter starts nothing (no loop, no thread) until it is first called. Every invocation
    runs on the same persistent event loop.
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
        compression: bool | None = None,
        authorization_source: str | None = None,
        pass_through_path: str | None = None,
    ) -> None:
        #: The app as it was given (an ASGI app, or the WSGI app passed as ``app`` or ``wsgi``).
        self.given: Any = app if app is not None else wsgi
        self.base_path = config.base_path(base_path)
        self.error_status_codes = config.error_status_codes(error_status_codes)
        # Settings that rewrite requests or responses wrap the app (only when one is set).
        self.app = rewrite.wrap(
            as_asgi(app, wsgi),
            authorization_source=authorization_source,
            compress=compression,
            keep_statuses=self.error_status_codes,
        )
        #: Where events of other sources go when no handler claims them (see holdfast.events).
        self.pass_through_path = config.pass_through_path(pass_through_path)
        self.exclude_headers = frozenset(name.lower().encode() for name in exclude_headers or ())
        #: Seconds kept free before the invocation deadline when draining after-response work.
        self.drain_margin = drain_margin
        self.engine = Engine()
        self.lifespan = Lifespan(self.app, lifespan)
        self.counts = {"drained": 0, "failed": 0, "spilled": 0, "cancelled": 0}
        #: Set by a host that drains invocations itself (the after-response extension): the sync
        #: handler hands each invocation to it once the response is ready.
        self.host: Callable[[Invocation], None] | None = None
        # A WSGI app reads headers through an environ, where some names collide (sources.request).
        wsgi_app = wsgi is not None or is_wsgi(app)
        self._codecs = Codecs(frozenset(text_mime_types or ()), wsgi=wsgi_app)
        self._handlers: dict[str, EventHandler] = {}
        self._predicates: list[tuple[Callable[[Any], bool], EventHandler]] = []
        self._startup: asyncio.Future[None] | None = None
        self._started = False
        self._host_started = False
        self._watched = False  # registered to be closed at interpreter exit
        self._finalizer = weakref.finalize(self, _close_engine, self.engine, self.lifespan, 1.0)
        if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
            self._start_in_init()

    def _start_in_init(self) -> None:
        # Created inside a running loop (an async app factory), the adapter cannot step its own
        # loop here: startup then runs before the first invocation instead.
        if events._get_running_loop() is None:
            self._run_startup()
        self._start_host()

    # -- the Lambda handler ---------------------------------------------------------------
    def __call__(self, event: Any, context: LambdaContext = None) -> Any:
        """Handle one invocation synchronously (the managed Python runtime's handler)."""
        self.start()
        invocation = self.begin(event, context)
        if self.host is None:
            # Nothing is delivered before this returns, after the drain: the app need not wait
            # for a hand-over (as under Mangum, its code after the last chunk runs at once).
            invocation.handed_over()
        self.engine.run_until(invocation.ready)
        outcome = invocation.outcome_nowait()
        invocation.handed_over()
        if self.host is not None:
            self.host(invocation)  # it drains once the runtime has the response
        elif not invocation.settle_now():
            # No host drains after the handler returns: finish the work before returning, so
            # nothing is lost (the response waits, as it does under Mangum).
            self.engine.run(invocation.drain(self.drain_timeout(context)))
        if isinstance(outcome, Failed):
            raise outcome.error if outcome.error is not None else InvalidEvent(outcome.message)
        assert isinstance(outcome, Buffered)  # begin() without streaming never streams
        return outcome.payload

    def start(self) -> None:
        """Run lifespan startup and start the managed-runtime host, if not done yet.

        The sync handler calls this first; call it yourself to start up at a moment you choose.
        """
        if not self._started:
            self._run_startup()
        if not self._host_started:
            self._start_host()

    def _run_startup(self) -> None:
        _watch_for_exit(self)
        self.engine.run(self.startup())

    def _start_host(self) -> None:
        self._host_started = True
        extension.start_for(self)

    async def startup(self) -> None:
        """Run lifespan startup once; concurrent callers wait for the same startup."""
        if self._started:
            return
        if self._startup is None:
            _watch_for_exit(self)
            self._startup = asyncio.ensure_future(self.lifespan.startup())
        await asyncio.shield(self._startup)
        self._started = True

    def begin(
        self, event: Any, context: LambdaContext = None, *, streaming: bool = False
    ) -> Invocation:
        """Dispatch ``event`` once and start handling it on the adapter's loop.

        Call it on that loop (``adapter.engine.loop``) or with no loop running; the caller
        runs or steps the loop. With ``streaming``, an HTTP response becomes :class:`Streamed`
        as soon as its head is ready.
        """
        running = events._get_running_loop()
        if running is not None and running is not self.engine.loop:
            # The app's task would wait on a loop nobody steps: refuse instead of hanging.
            raise RuntimeError(
                "Adapter.begin() must run on the adapter's own loop (adapter.engine.loop);"
                " from another event loop, call the handler in a thread:"
                " await asyncio.to_thread(handler, event, context)"
            )
        _watch_for_exit(self)
        return Invocation(self, event, context, streaming=streaming)

    def on(self, kind: str | Callable[[Any], bool]) -> Callable[[H], H]:
        """Register ``handler(event, context)`` (plain or ``async``) for non-HTTP events of
        ``kind`` (a name from :mod:`holdfast.dispatch`: ``"sqs"``, ``"s3"``, ``"warmer"``,
        ...), or for the non-HTTP events a predicate ``kind(event)`` accepts (checked first, in
        the order registered: e.g. a warmer ping of your own shape). Its return value is the
        invocation's answer; :func:`holdfast.events.each_record` adds typed records and partial
        batch failures."""
        if callable(kind):
            predicate = kind

            def register_predicate(handler: H) -> H:
                self._predicates.append((predicate, handler))
                return handler

            return register_predicate
        if kind not in OTHER_SOURCES and kind != WARMER:
            names = ", ".join((*OTHER_SOURCES, WARMER))
            raise ValueError(f"unknown event kind {kind!r}: expected one of {names}")

        def register(handler: H) -> H:
            self._handlers[kind] = handler
            return handler

        return register

    def handler_for(self, kind: EventKind, event: Any = None) -> EventHandler | None:
        """The handler registered with :meth:`on` for ``event`` of ``kind``, if any."""
        for predicate, handler in self._predicates:
            if predicate(event):
                return handler
        return self._handlers.get(kind.name)

    # -- after the response ---------------------------------------------------------------
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

        Adapters nobody closed are closed when they are garbage-collected or, at the latest,
        when the interpreter exits; Lambda hosts use SIGTERM instead.
        """
        if self._finalizer.detach() is not None:
            _close_engine(self.engine, self.lifespan, timeout)


class Invocation:
    """One event through the adapter: dispatched once, answered as one :data:`Outcome`, its
    after-response work drained.

    Public interface for hosts: :attr:`request_id`, :attr:`kind`, :attr:`context`,
    :meth:`outcome`, :meth:`handed_over`, :meth:`drain`, :attr:`idle`; for a host that steps the
    loop itself, :meth:`ready`, :meth:`outcome_nowait` and :meth:`settle_now`.
    """

    __slots__ = (
        "_codec",
        "_exchange",
        "_outcome",
        "_sink",
        "_streaming",
        "_tracked",
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
        self.kind = dispatch(event, adapter._codecs)
        self.request_id = _request_id(event, context)
        self.pending = PendingWork(self.request_id, adapter.engine.loop)
        #: The app's (or the event handler's) task; ``None`` when the answer needed none.
        self.task: asyncio.Task[Any] | None = None
        self._streaming = streaming
        self._outcome: Outcome | None = None
        self._codec: EventCodec | None = None
        self._exchange: Exchange | None = None
        self._sink: BufferedSink | StreamSink | None = None
        self._tracked = False
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
            StreamSink(loop, adapter.error_status_codes) if self._streaming else BufferedSink()
        )
        exchange = Exchange(request.body, sink, loop, head=request.method == "HEAD")
        self._codec, self._sink, self._exchange = codec, sink, exchange
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
            "aws.event": self.event,
            "aws.context": self.context,
        }
        if adapter._started:
            coro = adapter.app(scope, exchange.receive, exchange.send)
        else:
            coro = _start_then_serve(adapter, scope, exchange.receive, exchange.send)
        task = self._create_task(coro)
        if isinstance(sink, StreamSink):
            task.add_done_callback(lambda _: sink.wake())

    def _start_handler(self) -> None:
        name = self.kind.name
        handler = self.adapter.handler_for(self.kind, self.event)
        if handler is None and name in (TASK_MESSAGES, TASK_SCHEDULE):
            from holdfast.tasks import lambda_consumer  # dispatch found it imported

            handler = (
                lambda_consumer.handle_task_batch
                if name == TASK_MESSAGES
                else lambda_consumer.handle_task_schedule
            )
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
        # The task copies the current context: bind the pending-work set just around its creation.
        token = _pending.bind(self.pending)
        try:
            # An ASGI app is typed as returning an awaitable; every real one is a coroutine.
            task: asyncio.Task[Any] = self.adapter.engine.loop.create_task(coro)  # type: ignore[arg-type]
        finally:
            _pending.unbind(token)
        self.task = task
        return task

    # -- the outcome ----------------------------------------------------------------------------
    def ready(self) -> bool:
        """Whether :meth:`outcome` would return without waiting."""
        if self._outcome is not None:
            return True
        task = self.task
        if task is None or task.done():
            return True
        exchange, sink = self._exchange, self._sink
        if exchange is None:
            return False
        return exchange.complete or (isinstance(sink, StreamSink) and sink.streaming)

    async def outcome(self) -> Outcome:
        """The answer: buffered (the response complete), streamed (its head ready) or failed."""
        if not self.ready():
            sink = self._sink
            if isinstance(sink, StreamSink):
                while not self.ready():
                    await sink.wait()
            else:
                assert self.task is not None
                waiters: list[asyncio.Future[Any]] = [self.task]
                if self._exchange is not None:
                    waiters.append(self._exchange.completion())
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        return self.outcome_nowait()

    def outcome_nowait(self) -> Outcome:
        """The outcome once :meth:`ready` (for hosts that step the loop themselves)."""
        if self._outcome is None:
            self._outcome = self._decide()
        return self._outcome

    def _decide(self) -> Outcome:
        task = self.task
        assert task is not None
        exchange, sink = self._exchange, self._sink
        if exchange is None:
            self._tracked = True  # whatever it raised is the outcome
            return self._handler_outcome(task)
        if isinstance(sink, StreamSink) and sink.streaming:
            # A failure from here on truncates the stream; the drain logs it.
            return self._streamed(sink.status, sink.headers, self._stream_body())
        if exchange.complete:
            assert sink is not None
            return self._answer(sink.response())
        self._tracked = True  # whatever it raised is the outcome
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
        assert self._codec is not None
        try:
            result = self._codec.encode(response)
        except InvalidEvent as exc:  # a pass-through POST the app has no route for
            return Failed.from_exception(exc)
        if self._codec.too_large(result):
            logger.error(
                "request %s: the response (status %d) exceeds the %d-byte payload limit of %s;"
                " answering 413 instead",
                self.request_id,
                response.status,
                self._codec.max_response_bytes,
                self._codec.name,
            )
            response = HTTPResponse(413, list(_PLAIN_TEXT), b"Response payload too large")
            if response.status in adapter.error_status_codes:
                return Failed.from_exception(http_status_error(413, "Response payload too large"))
            result = self._codec.encode(response)
        return Buffered(result)

    def _streamed(self, status: int, headers: list[tuple[bytes, bytes]], body: Any) -> Streamed:
        adapter = self.adapter
        if adapter.exclude_headers:
            headers = _without(headers, adapter.exclude_headers)
        # The head as a Function URL (payload 2.0) carries it: one codec decides that.
        encoded = adapter._codecs.apigw_v2.encode(HTTPResponse(status, headers, b""))
        return Streamed(status, encoded["headers"], list(encoded.get("cookies", [])), body)

    async def _stream_body(self) -> AsyncIterator[bytes]:
        sink, task = self._sink, self.task
        assert isinstance(sink, StreamSink) and task is not None
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
        if self._exchange is not None:
            self._exchange.hand_over()
        if isinstance(self._sink, StreamSink):
            self._sink.release()  # a body the host did not read to its end is not waited for

    @property
    def idle(self) -> bool:
        """Whether nothing at all is owed after the response (a host may then ask for the next
        event in the same breath as it answers)."""
        task = self.task
        return (task is None or task.done()) and not self.pending

    async def drain(self, timeout: float | None) -> DrainReport:
        """Finish the after-response work, at most ``timeout`` seconds (see
        :meth:`Adapter.drain_timeout`), cancel what is left over; counted in ``adapter.counts``."""
        self.handed_over()
        failed = 0
        if not self._tracked:
            if self._app_waits():
                await asyncio.sleep(0)  # the app's final send returns and runs to its next await
            failed = self._adopt_app_task()
        report = await self.pending.drain(timeout) if self.pending else DrainReport()
        report.failed += failed
        self.adapter.record(report)
        return report

    def settle_now(self) -> bool:
        """For a host that steps the loop itself, once the response is handed over: let the app
        return from its final send now (one pass of the loop); whether nothing is left to drain."""
        if not self._tracked:
            if self._app_waits():
                self.adapter.engine.step()
            failed = self._adopt_app_task()
            if failed:
                self.adapter.record(DrainReport(failed=failed))
        return self.idle

    def _app_waits(self) -> bool:
        task = self.task
        return task is not None and self._exchange is not None and not task.done()

    def _adopt_app_task(self) -> int:
        """The app's code after its final ``send`` becomes after-response work, unless it has
        ended already (a plain endpoint has): only real work is counted. Returns 1 when the app
        had already failed after its response, else 0."""
        self._tracked = True
        task = self.task
        if task is None or self._exchange is None:
            return 0
        if self._streaming:
            failure = "the app raised during or after its streamed response"
        else:
            failure = "the app raised after its response was complete"
        if not task.done():
            self.pending.track(task, "the app after its response", failure=failure)
        elif not task.cancelled() and task.exception() is not None:
            logger.error("request %s: %s", self.request_id, failure, exc_info=task.exception())
            return 1
        return 0


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


# -- closing: an adapter owns a loop (and maybe a started lifespan) once it has been used --------

_open_adapters: weakref.WeakSet[Adapter] = weakref.WeakSet()
_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


def _watch_for_exit(adapter: Adapter) -> None:
    """Close ``adapter`` before the interpreter joins its threads at exit.

    ``atexit`` would be too late: a worker thread of the app's (AnyIO's, for a sync FastAPI
    endpoint) waits for a callback on the adapter's loop, and the interpreter joins such threads
    before it runs ``atexit`` handlers — nobody would ever step the loop, and exit would hang.
    """
    global _exit_hook_registered
    if adapter._watched:
        return
    adapter._watched = True
    _open_adapters.add(adapter)
    if _exit_hook_registered:
        return
    with _exit_hook_lock:
        if not _exit_hook_registered:
            _exit_hook_registered = True
            try:
                threading._register_atexit(_close_open_adapters)  # type: ignore[attr-defined]
            except RuntimeError:  # the interpreter is already shutting down
                pass


def _close_open_adapters() -> None:
    for adapter in list(_open_adapters):
        adapter.close()


def _close_engine(engine: Engine, lifespan: Lifespan, timeout: float) -> None:
    """Run lifespan shutdown, cancel what is left and close the loop (the finalizer of an
    adapter; never refers to the adapter itself)."""
    if not engine.started:
        engine.close()
        return
    if events._get_running_loop() is not None or not _can_step(engine):
        # Another loop runs in this thread (an async caller, or a garbage collection inside
        # one): this thread may not step the adapter's loop, a short-lived one may.
        worker = threading.Thread(target=_close_engine_now, args=(engine, lifespan, timeout))
        worker.start()
        worker.join()
        return
    _close_engine_now(engine, lifespan, timeout)


def _can_step(engine: Engine) -> bool:
    return not engine.loop.is_running()


def _close_engine_now(engine: Engine, lifespan: Lifespan, timeout: float) -> None:
    try:
        engine.run(lifespan.shutdown(timeout))
    except Exception:
        logger.exception("lifespan shutdown failed")
    loop = engine.loop
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftovers:
        task.cancel()
    if leftovers:
        engine.run(asyncio.wait(leftovers, timeout=timeout))
    # Callbacks the endings scheduled (AnyIO stops its worker threads in one) run before the
    # loop closes.
    engine.run(loop.shutdown_asyncgens())
    engine.close()


def as_asgi(app: Any, wsgi: Any) -> ASGIApp:
    """``app`` as an ASGI app: ASGI apps as they are, WSGI apps (``wsgi=`` or recognised by
    :func:`is_wsgi`) wrapped in a2wsgi's middleware."""
    if (app is None) == (wsgi is None):
        raise TypeError("pass exactly one of an ASGI app or wsgi=<WSGI app>")
    if wsgi is None and not is_wsgi(app):
        return app  # type: ignore[no-any-return]
    try:
        from a2wsgi import WSGIMiddleware
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("WSGI apps need a2wsgi: pip install a2wsgi") from None
    return WSGIMiddleware(wsgi if wsgi is not None else app)  # type: ignore[return-value]


def is_wsgi(app: Any) -> bool:
    """Whether ``app`` is a WSGI app: ``(environ, start_response)``, not ``(scope, receive,
    send)``. The one WSGI detection (``holdfast run`` asks it too)."""
    call = app if inspect.isroutine(app) else getattr(app, "__call__", None)  # noqa: B004
    if call is None or inspect.iscoroutinefunction(call):
        return False
    try:
        parameters = inspect.signature(call).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 2
