"""Telemetry that survives the freeze: flush exporters after the response, before Lambda freezes.

Span processors and metric readers batch in the background and export on a timer; on Lambda the
timer rarely fires before the environment freezes, and spans finished after the response used
to show durations of hours. Flushes run as the *last* after-response work of every request, once
the app's coroutine (and the spans its middleware closes) is done.

With no code: :func:`flush_in_use` (the adapter calls it for every invocation unless
``flush_telemetry=False``) adds the flush of each library in use — OpenTelemetry SDK providers
set globally, ``ddtrace``'s tracer, an initialised ``sentry_sdk`` client. A library the app has
not imported costs one ``sys.modules`` lookup. :class:`FlushAfterResponse` and
:func:`flush_after_response` remain for providers that are not global.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from holdfast import pending
from holdfast._types import ASGIApp, Receive, Scope, Send

Flush = Callable[[], Any]


def opentelemetry_flush(*providers: Any, timeout_millis: int = 5_000) -> Flush:
    """A flush for OpenTelemetry: ``force_flush`` on each provider given, or on the global
    tracer, meter and logger providers when none is."""

    def flush() -> None:
        for provider in providers or _global_opentelemetry_providers():
            force_flush = getattr(provider, "force_flush", None)
            if force_flush is not None:
                force_flush(timeout_millis)

    flush.__qualname__ = "opentelemetry_flush"
    return flush


def flush_after_response(*flushes: Flush) -> None:
    """Run ``flushes`` once the current request's after-response work has drained."""
    work = pending.current()
    if work is None:
        raise RuntimeError(
            "flush_after_response() was called outside a request handled by holdfast"
        )
    for flush in flushes:
        work.finally_(flush)


class FlushAfterResponse:
    """ASGI middleware: after every HTTP request handled by holdfast, run ``flushes`` last.

    ``app = FlushAfterResponse(app, opentelemetry_flush())``; outside holdfast (uvicorn in
    development) it passes requests through untouched.
    """

    def __init__(self, app: ASGIApp, *flushes: Flush) -> None:
        self.app = app
        self.flushes = flushes or (opentelemetry_flush(),)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and pending.current() is not None:
            flush_after_response(*self.flushes)
        await self.app(scope, receive, send)


def _global_opentelemetry_providers() -> list[Any]:
    providers: list[Any] = []
    try:
        from opentelemetry import trace
    except ImportError:
        return providers
    providers.append(trace.get_tracer_provider())
    try:
        from opentelemetry import metrics

        providers.append(metrics.get_meter_provider())
    except ImportError:  # pragma: no cover - metrics ship with the API package
        pass
    try:
        from opentelemetry import _logs

        providers.append(_logs.get_logger_provider())
    except ImportError:  # pragma: no cover - older API packages have no logs
        pass
    return providers


def flush_in_use(work: pending.PendingWork) -> None:
    """Run the flush of every telemetry library in use last in ``work``."""
    modules = sys.modules
    if "opentelemetry.sdk" in modules and any(
        hasattr(provider, "force_flush") for provider in _global_opentelemetry_providers()
    ):
        work.finally_(_OPENTELEMETRY)
    if "ddtrace" in modules and _ddtrace_tracer() is not None:
        work.finally_(ddtrace_flush)
    if "sentry_sdk" in modules:
        client = _sentry_client()
        if client is not None:
            # An async transport (sentry_sdk's AsyncHttpTransport) flushes on the loop.
            is_async = getattr(client, "_has_async_transport", None)
            work.finally_(sentry_flush_async if is_async and is_async() else sentry_flush)


_OPENTELEMETRY = opentelemetry_flush()


def ddtrace_flush() -> None:
    """Send the traces ``ddtrace`` has buffered to the agent now."""
    tracer = _ddtrace_tracer()
    if tracer is not None:
        tracer.flush()


def sentry_flush(timeout: float = 2.0) -> None:
    """Send the events ``sentry_sdk`` has queued now (waits at most ``timeout`` seconds)."""
    client = _sentry_client()
    if client is not None:
        client.flush(timeout=timeout)


async def sentry_flush_async(timeout: float = 2.0) -> None:
    """:func:`sentry_flush` for a client with an async transport."""
    client = _sentry_client()
    if client is not None:
        await client.flush_async(timeout=timeout)


def _ddtrace_tracer() -> Any:
    """ddtrace's tracer when it traces this app: enabled, and something patched (``patch``,
    ``patch_all``, ``ddtrace-run``, ``import ddtrace.auto``) — merely imported (a pytest
    plugin does), it has nothing to send."""
    tracer = getattr(sys.modules.get("ddtrace"), "tracer", None)
    if tracer is None or not getattr(tracer, "enabled", False):
        return None
    monkey = sys.modules.get("ddtrace._monkey")
    patched = getattr(monkey, "_PATCHED_MODULES", None)
    return tracer if patched or "ddtrace.auto" in sys.modules else None


def _sentry_client() -> Any:
    get_client = getattr(sys.modules.get("sentry_sdk"), "get_client", None)
    if get_client is None:
        return None
    client = get_client()
    return client if client.is_active() else None
