"""holdfast: run ASGI/WSGI apps on AWS Lambda, answer at once, finish the work after the
response before Lambda freezes the environment.

The public API is imported lazily, so ``import holdfast`` stays cheap at cold start. Users import
what this module, ``holdfast.tasks``, ``holdfast.events``, ``holdfast.azure`` and
``holdfast.emulator`` list in ``__all__``; every other module is internal (no stability promise).

``holdfast.Adapter`` is where the hosts plug into the core: the first time the name is looked up,
:func:`holdfast.hosts.attach` is registered as the adapter-created hook
(:func:`holdfast.adapter.on_created`), so an adapter a function's module builds under AWS's
managed runtime starts the after-response host and lifespan startup in the init phase. The core
itself never imports a host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "ASGIProtocolError",
    "Adapter",
    "Buffered",
    "CompletionMiddleware",
    "Failed",
    "FlushAfterResponse",
    "FunctionError",
    "HTTPStatusError",
    "HoldfastError",
    "InvalidEvent",
    "LambdaContext",
    "LifespanError",
    "Outcome",
    "Streamed",
    "WSGICompletionMiddleware",
    "adopt",
    "after_response",
    "detach",
    "on_response_sent",
    "opentelemetry_flush",
    "trace_id",
]

_EXPORTS = {
    "ASGIProtocolError": "holdfast.errors",
    "Adapter": "holdfast.adapter",
    "Buffered": "holdfast.outcome",
    "CompletionMiddleware": "holdfast.completion",
    "Failed": "holdfast.outcome",
    "FlushAfterResponse": "holdfast.telemetry",
    "FunctionError": "holdfast.errors",
    "HTTPStatusError": "holdfast.errors",
    "HoldfastError": "holdfast.errors",
    "InvalidEvent": "holdfast.errors",
    "LambdaContext": "holdfast._types",
    "LifespanError": "holdfast.errors",
    "Outcome": "holdfast.outcome",
    "Streamed": "holdfast.outcome",
    "WSGICompletionMiddleware": "holdfast.completion",
    "adopt": "holdfast.adoption",
    "after_response": "holdfast.pending",
    "detach": "holdfast.adoption",
    "on_response_sent": "holdfast.pending",
    "opentelemetry_flush": "holdfast.telemetry",
    "trace_id": "holdfast.runtime.context",
}

if TYPE_CHECKING:
    from holdfast._types import LambdaContext
    from holdfast.adapter import Adapter
    from holdfast.adoption import adopt, detach
    from holdfast.completion import CompletionMiddleware, WSGICompletionMiddleware
    from holdfast.errors import (
        ASGIProtocolError,
        FunctionError,
        HoldfastError,
        HTTPStatusError,
        InvalidEvent,
        LifespanError,
    )
    from holdfast.outcome import Buffered, Failed, Outcome, Streamed
    from holdfast.pending import after_response, on_response_sent
    from holdfast.runtime.context import trace_id
    from holdfast.telemetry import FlushAfterResponse, opentelemetry_flush


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'holdfast' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    if name == "Adapter":
        from holdfast import hosts
        from holdfast.adapter import on_created

        on_created(hosts.attach)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
