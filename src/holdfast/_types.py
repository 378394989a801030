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
#: The context object Lambda passes to handlers (awslambdaric's, or holdfast's own).
LambdaContext = Any
