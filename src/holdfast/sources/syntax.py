"""What HTTP/1.1 lets through a field (RFC 9110 §5.1, §5.5), as h11 and uvicorn enforce it: a
field name is a token; a field value holds no control character but HTAB (no CR, LF or NUL that
would end a line or a string early, no DEL).

A request outside these rules never reaches an app (the adapter answers :class:`BadRequest`
with 400, as a server answers a client that sends one); a response outside them is never
emitted (the bridge refuses the app's head, an app error answered 500).
"""

from __future__ import annotations

import re

from holdfast.errors import InvalidEvent

#: RFC 9110 token: what a method or a header name consists of.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_BYTES = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Every control character but HTAB, and DEL: none may stand in a field value.
_CONTROLS = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])
# Every byte to itself but those, each to another byte: a value without them translates to
# itself (translate, given no bytes to delete, then returns the very object), in one C pass
# with no table to build.
_CONTROLS_MOVED = bytes(byte ^ 0x80 if byte in _CONTROLS else byte for byte in range(256))


class BadRequest(InvalidEvent):
    """The event is well-formed, but the request in it is one no HTTP server accepts from a
    client (a header name that is not a token, a control character in a header value, NUL in
    the path): the adapter answers ``400 Bad Request`` itself and the app never sees it."""


def is_token(name: bytes) -> bool:
    return _TOKEN_BYTES.fullmatch(name) is not None


def has_control(value: bytes) -> bool:
    """Whether ``value`` holds a character a field value may not (see the module docs)."""
    # One C pass (translate) is cheaper than a regex search; `!=` on the same object is free.
    return value.translate(_CONTROLS_MOVED) != value
