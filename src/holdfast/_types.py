"""Typed aliases for the ASGI interface and Lambda's handler arguments."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "ASGIApp",
    "LambdaContext",
    "LambdaEvent",
    "Message",
    "RawHeaders",
    "Receive",
    "Scope",
    "Send",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Raw header pairs as ASGI carries them: lower-case names, order and repeats kept.
RawHeaders = list[tuple[bytes, bytes]]

LambdaEvent = dict[str, Any]
#: The ``context`` a handler receives (``holdfast.LambdaContext``, for annotations): awslambdaric's
#: ``LambdaContext``, ``holdfast run``'s :class:`holdfast.runtime.context.RuntimeContext` (the same
#: attributes and methods) or a test's stand-in; any of them may come, hence ``Any``.
LambdaContext = Any
