"""``holdfast.Adapter``: an ASGI (or WSGI) app as a Lambda handler for every HTTP event source.

The adapter turns an event into an :class:`~holdfast.invocation.Invocation` (see there for the
steps every host takes) and knows no host: it reads no environment variable of its own (settings
come through :mod:`holdfast.config`), starts no thread and registers nothing. The synchronous
``adapter(event, context)`` (what awslambdaric calls) steps the adapter's loop itself, then gives
the invocation to :attr:`Adapter.drainer` when a host installed one (the managed runtime's
after-response extension), or drains before returning.

A host learns of each new adapter through :func:`on_created`: ``holdfast.Adapter`` (the public
name) registers :func:`holdfast.hosts.attach` there, which starts the managed-runtime host when
this process is one. Constructing an adapter from :mod:`holdfast.adapter` itself starts nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from holdfast import config, rewrite
from holdfast._types import ASGIApp, LambdaContext
from holdfast.dispatch import OTHER_SOURCES, WARMER, EventHandler, EventKind
from holdfast.engine import Engine, running_loop
from holdfast.errors import InvalidEvent
from holdfast.invocation import Invocation
from holdfast.lifespan import Lifespan, LifespanMode
from holdfast.outcome import Buffered, Failed
from holdfast.pending import DEFAULT_DRAIN_MARGIN, DrainReport, drain_budget
from holdfast.sources import Codecs

__all__ = ["Adapter", "AppKind", "EventHandler", "app_kind", "as_asgi", "is_wsgi", "on_created"]

logger = logging.getLogger("holdfast")

H = TypeVar("H", bound=EventHandler)

_created_hooks: list[Callable[[Adapter], None]] = []


def on_created(hook: Callable[[Adapter], None]) -> None:
    """Call ``hook(adapter)`` for every adapter created from now on, once its construction is
    complete (the registration hook through which a host learns of adapters; see
    :func:`holdfast.hosts.attach`). Registering the same hook again is a no-op."""
    if hook not in _created_hooks:
        _created_hooks.append(hook)


class Adapter:
    """Run an ASGI 3 app (or a WSGI app) as an AWS Lambda handler.

    ``handler = Adapter(app)`` is callable as ``handler(event, context)`` and answers API Gateway
    REST (payload 1.0) and HTTP API (2.0) events, Function URLs, ALB (single- and multi-value
    headers) and VPC Lattice (v1, v2) in the shape the event's source expects.

    Lifespan startup runs once. On Lambda it runs when the adapter is created, in the init
    phase, so a failure is an init error (the host does it: see :func:`holdfast.hosts.attach`);
    anywhere else creating an adapter starts nothing (no loop, no thread) until it is first
    called. Every invocation runs on the same persistent event loop.
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
        adopt_tasks: bool | None = None,
        flush_telemetry: bool | None = None,
        context_headers: bool | None = None,
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
        #: Whether asyncio tasks the app's code starts during a request are waited for after
        #: the response (holdfast.adoption).
        self.adopt_tasks = config.flag("ADOPT_TASKS", adopt_tasks, default=True)
        #: Whether the buffers of the telemetry libraries in use are flushed after every
        #: invocation (holdfast.telemetry).
        self.flush_telemetry = config.flag("FLUSH_TELEMETRY", flush_telemetry, default=True)
        self.engine = Engine()
        self.lifespan = Lifespan(self.app, lifespan)
        self.counts = {"drained": 0, "failed": 0, "spilled": 0, "cancelled": 0, "overrun": 0}
        #: Who finishes an invocation after the synchronous handler returned: installed by a
        #: host that drains after the runtime has the response (the managed runtime's
        #: after-response extension). ``None``: the handler drains before returning.
        self.drainer: Callable[[Invocation], None] | None = None
        # A WSGI app reads headers through an environ, where some names collide (sources.request).
        wsgi_app = wsgi is not None or is_wsgi(app)
        #: Whether requests carry the Web Adapter's platform context headers
        #: (``x-amzn-request-context``, ``x-amzn-lambda-context``, ``x-amz-tenant-id``): off
        #: unless asked for, as no in-process app needs them (docs/adapter.md).
        self.context_headers = config.flag("CONTEXT_HEADERS", context_headers, default=False)
        self.codecs = Codecs(
            frozenset(text_mime_types or ()), wsgi=wsgi_app, context_headers=self.context_headers
        )
        self._handlers: dict[str, EventHandler] = {}
        self._predicates: list[tuple[Callable[[Any], bool], EventHandler]] = []
        self._startup: asyncio.Future[None] | None = None
        self._started = False
        self._watched = False  # registered to be closed at interpreter exit
        self._finalizer = weakref.finalize(self, _close_engine, self.engine, self.lifespan, 1.0)
        for hook in _created_hooks:
            hook(self)

    @property
    def started(self) -> bool:
        """Whether lifespan startup has completed."""
        return self._started

    # -- the Lambda handler ---------------------------------------------------------------
    def __call__(self, event: Any, context: LambdaContext = None) -> Any:
        """Handle one invocation synchronously (the managed Python runtime's handler)."""
        if not self._started:
            self.start()
        invocation = self.begin(event, context)
        drainer = self.drainer
        if drainer is None:
            # Nothing is delivered before this returns, after the drain: the app need not wait
            # for a hand-over (as under Mangum, its code after the last chunk runs at once).
            invocation.handed_over()
        self.engine.run_until(invocation.ready)
        outcome = invocation.decided()
        if drainer is not None:
            invocation.handed_over()
            drainer(invocation)  # it drains once the runtime has the response
        elif not invocation.settle():
            # Finish the work before returning, so nothing is lost (the response waits, as it
            # does under Mangum).
            self.engine.run(invocation.drain(self.drain_timeout(context)))
        if isinstance(outcome, Failed):
            failure = outcome.error if outcome.error is not None else InvalidEvent(outcome.message)
            # awslambdaric reports this frame's line as the stackTrace: it says what happened.
            raise failure  # holdfast: a function error on purpose (see errorType), not a crash
        assert isinstance(outcome, Buffered)  # begin() without streaming never streams
        return outcome.payload

    def start(self) -> None:
        """Run lifespan startup, if not done yet (from no running loop).

        The sync handler calls this first; call it yourself to start up at a moment you choose.
        """
        if not self._started:
            _watch_for_exit(self)
            self.engine.run(self.startup())

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
        running = running_loop()
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
        self.counts["overrun"] += len(report.overrun)

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
    if running_loop() is not None or not _can_step(engine):
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
    send)`` (see :func:`app_kind`)."""
    return app_kind(app) == "wsgi"


AppKind = Literal["asgi", "wsgi", "handler"]
# Parameter names that give a two-argument callable away as a WSGI app, not a Lambda handler.
_WSGI_NAMES = frozenset({"environ", "env", "start_response"})


def app_kind(obj: Any, *, handlers: bool = False) -> AppKind:
    """How ``obj`` is called, the one detection: an ASGI app ``(scope, receive, send)``, a WSGI
    app ``(environ, start_response)`` or, where a Lambda ``handler(event, context)`` may be
    given too (``handlers``: ``holdfast run MODULE:ATTR``), such a handler.

    Three positional parameters (or ``*args``, or no readable signature) make an ASGI app. An
    adapter takes no handlers: any other synchronous two-parameter callable is a WSGI app there.
    Where handlers may come, a coroutine function is a handler, and a synchronous one is a WSGI
    app only when its parameter names (or Flask's ``wsgi_app``) give it away.
    """
    call = obj if inspect.isroutine(obj) else getattr(obj, "__call__", None)  # noqa: B004
    if call is None:
        return "asgi"
    try:
        parameters = list(inspect.signature(call).parameters.values())
    except (TypeError, ValueError):
        return "asgi"  # a C-level callable: ASGI apps are the likelier kind
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return "asgi"
    if inspect.iscoroutinefunction(call):
        return "handler" if handlers else "asgi"
    if not handlers:
        return "wsgi" if len(positional) == 2 else "asgi"
    names = {p.name for p in positional}
    return "wsgi" if names & _WSGI_NAMES or hasattr(obj, "wsgi_app") else "handler"
