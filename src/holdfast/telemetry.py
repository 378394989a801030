"""Telemetry that survives the freeze: flush exporters after the response, before Lambda freezes.

Span processors and metric readers batch in the background and export on a timer; on Lambda the
timer rarely fires before the environment freezes, and spans finished after the response used
to show durations of hours. :class:`FlushAfterResponse` runs flushes as the *last* after-response
work of every request, once the app's coroutine (and the spans its middleware closes) is done.
"""

from __future__ import annotations

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
