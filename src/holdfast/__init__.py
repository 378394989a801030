"""holdfast: run ASGI/WSGI apps on AWS Lambda, answer at once, finish the work after the
response before Lambda freezes the environment.

The public API is imported lazily, so ``import holdfast`` stays cheap at cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "ASGIProtocolError",
    "Adapter",
    "Buffered",
    "Failed",
    "FunctionError",
    "HTTPStatusError",
    "HoldfastError",
    "InvalidEvent",
    "LifespanError",
    "Outcome",
    "Streamed",
    "adopt",
    "after_response",
    "detach",
    "on_response_sent",
]

_EXPORTS = {
    "ASGIProtocolError": "holdfast.errors",
    "Adapter": "holdfast.adapter",
    "Buffered": "holdfast.outcome",
    "Failed": "holdfast.outcome",
    "FunctionError": "holdfast.errors",
    "HTTPStatusError": "holdfast.errors",
    "HoldfastError": "holdfast.errors",
    "InvalidEvent": "holdfast.errors",
    "LifespanError": "holdfast.errors",
    "Outcome": "holdfast.outcome",
    "Streamed": "holdfast.outcome",
    "adopt": "holdfast.adoption",
    "after_response": "holdfast.pending",
    "detach": "holdfast.adoption",
    "on_response_sent": "holdfast.pending",
}

if TYPE_CHECKING:
    from holdfast.adapter import Adapter
    from holdfast.adoption import adopt, detach
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'holdfast' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
