"""Reading an HTTP/1.1 response from an asyncio stream: one reader for every client here.

The Runtime API client (`runtime.client`) reads whole answers with :func:`read_response`; the
proxy (`proxy.upstream`) reads the head with :func:`read_head` and streams the body with
:func:`body_chunks`. Both get the same strict syntax (`grammar`): broken HTTP is
`ProtocolError`, a `ConnectionError`, so a client treats it as the lost connection it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .grammar import (
    MAX_HEAD_BYTES,
    Fields,
    ProtocolError,
    body_framing,
    chunk_size,
    parse_fields,
    parse_response_head,
)

__all__ = ["Fields", "ProtocolError", "ResponseHead", "body_chunks", "read_head", "read_response"]

_CHUNK = 64 * 1024
_FRAMING = frozenset({"content-length", "transfer-encoding"})


class ResponseHead:
    """A response's status, fields (lower-case names) and how its body is framed."""

    __slots__ = ("chunked", "fields", "index", "keep_alive", "length", "status")

    def __init__(
        self,
        status: int,
        fields: Fields,
        index: dict[str, str],
        length: int | None,
        chunked: bool,
        keep_alive: bool,
    ) -> None:
        self.status = status
        self.fields = fields
        #: The fields by name; the last value where a name came more than once.
        self.index = index
        #: The body's length; None with `chunked`, or when the body runs to the connection's end
        #: (then `keep_alive` is False).
        self.length = length
        self.chunked = chunked
        self.keep_alive = keep_alive


async def read_head(reader: asyncio.StreamReader, *, to_head_request: bool = False) -> ResponseHead:
    """The next response head on `reader` (1xx interim responses are passed over, except 101)."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise ProtocolError("header section too large") from None
        status, http11, fields = parse_response_head(head)
        if status >= 200 or status == 101:
            return _head(status, http11, fields, to_head_request)


async def read_response(reader: asyncio.StreamReader) -> tuple[ResponseHead, bytes]:
    """The next whole response on `reader`: its head and its body."""
    head = await read_head(reader)
    if head.length is not None:
        return head, await reader.readexactly(head.length)
    if not head.chunked:
        return head, await reader.read()
    return head, b"".join([chunk async for chunk in body_chunks(reader, head)])


async def body_chunks(reader: asyncio.StreamReader, head: ResponseHead) -> AsyncIterator[bytes]:
    """The body of the response `head` began, piece by piece as it arrives.

    A body cut short raises `asyncio.IncompleteReadError`; broken chunk framing `ProtocolError`.
    """
    if head.chunked:
        async for chunk in _chunked(reader):
            yield chunk
    elif head.length is not None:
        async for chunk in _exactly(reader, head.length):
            yield chunk
    else:
        while chunk := await reader.read(_CHUNK):
            yield chunk


async def _chunked(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        try:
            size = chunk_size(await reader.readuntil(b"\n"))
        except asyncio.LimitOverrunError:
            raise ProtocolError("chunk size line too long") from None
        if size == 0:
            # Trailers: nothing here has a use for them, but they must be well formed.
            trailers = b""
            while (line := await reader.readuntil(b"\n")) not in (b"\r\n", b"\n"):
                trailers += line
                if len(trailers) > MAX_HEAD_BYTES:
                    raise ProtocolError("trailer section too large")
            parse_fields(trailers)
            return
        async for chunk in _exactly(reader, size):
            yield chunk
        if await reader.readexactly(2) != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")


async def _exactly(reader: asyncio.StreamReader, size: int) -> AsyncIterator[bytes]:
    """`size` bytes, piece by piece as they arrive (a huge announced size costs nothing until
    its bytes really come)."""
    remaining = size
    while remaining:
        chunk = await reader.read(min(remaining, _CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", remaining)
        remaining -= len(chunk)
        yield chunk


def _head(status: int, http11: bool, fields: Fields, to_head_request: bool) -> ResponseHead:
    index = dict(fields)
    length: int | None
    chunked = False
    text = index.get("content-length")
    if len(index) != len(fields) or "transfer-encoding" in index or text is None:
        length, chunked = body_framing([field for field in fields if field[0] in _FRAMING])
    elif text.isdigit() and text.isascii() and len(text) <= 18:
        length = int(text)  # the usual case: one plain Content-Length
    else:
        length, _ = body_framing([("content-length", text)])
    connection = index.get("connection")
    if connection is None:
        keep_alive = http11
    elif len(index) == len(fields):
        keep_alive = _keep_alive(http11, connection)
    else:
        keep_alive = _keep_alive(http11, ",".join([v for n, v in fields if n == "connection"]))
    if to_head_request or status in (204, 304) or status < 200:
        return ResponseHead(status, fields, index, 0, False, keep_alive)
    if chunked:
        return ResponseHead(status, fields, index, None, True, keep_alive)
    if length is None:
        keep_alive = False  # the body runs to the end of the connection
    return ResponseHead(status, fields, index, length, False, keep_alive)


def _keep_alive(http11: bool, connection: str) -> bool:
    connection = connection.lower()
    return "close" not in connection if http11 else "keep-alive" in connection
