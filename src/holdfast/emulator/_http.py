"""A small HTTP/1.1 server on asyncio streams, shared by the Runtime API and the front.

Only what the emulator needs, but all of that properly: keep-alive, `Content-Length` and chunked
request bodies (with trailers, which streamed Lambda responses use to report late errors),
`Expect: 100-continue` (libcurl sends it for large bodies), request bodies read incrementally,
and chunked responses written as their chunks are produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

_log = logging.getLogger("holdfast.emulator")

_MAX_HEADER_BYTES = 64 * 1024
_READ_LIMIT = 1024 * 1024
# Bodies of known length up to this size are read in one call.
_SMALL_BODY = 64 * 1024
# What one read from a socket asks for (see `small_reads`).
_READ_SIZE = 64 * 1024


class Headers:
    """An ordered, case-insensitive multi-map of header fields, as received."""

    __slots__ = ("_first", "_raw")

    def __init__(
        self, raw: Iterable[tuple[str, str]] = (), first: dict[str, str] | None = None
    ) -> None:
        self._raw = list(raw)
        # The first value of each name, by lowercased name (built on the first lookup unless
        # the parser, which sees every name anyway, hands it over).
        self._first = first

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name`, or `default`."""
        first = self._first
        if first is None:
            first = self._first = {}
            for key, value in self._raw:
                first.setdefault(key.lower(), value)
        return first.get(name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        """Every value of `name`, in the order received."""
        lowered = name.lower()
        return [value for key, value in self._raw if key.lower() == lowered]

    def items(self) -> list[tuple[str, str]]:
        """All (name, value) pairs, names as the peer spelled them."""
        return list(self._raw)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __repr__(self) -> str:
        return f"Headers({self._raw!r})"


class ProtocolError(Exception):
    """The peer spoke broken HTTP; the connection is answered 400 and closed."""


class BodyTooLarge(Exception):
    """A request body grew past the limit its reader was given."""


class StreamAborted(Exception):
    """Raised by a response body iterator to end a chunked response without its last chunk.

    The client then sees a truncated response, which is how an error after the first byte of a
    streamed response reaches it in the real service too.
    """


class RequestBody:
    """The body of one request, read on demand so streamed bodies can be forwarded as they come."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        *,
        length: int | None,
        chunked: bool,
        on_first_read: Callable[[], Awaitable[None]] | None,
        expects_continue: bool = False,
    ) -> None:
        self._reader = reader
        self._expects_continue = expects_continue
        self._remaining = length or 0
        self._chunked = chunked
        self._on_first_read = on_first_read
        self._done = not chunked and not length
        self._chunk_left = 0
        self.length = length
        self.trailers = Headers()

    @property
    def complete(self) -> bool:
        """True once every byte of the body (and its trailers) has been read."""
        return self._done

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the body piece by piece as it arrives."""
        if self._on_first_read is not None and not self._done:
            callback, self._on_first_read = self._on_first_read, None
            await callback()
        while not self._done:
            chunk = await (self._read_chunk() if self._chunked else self._read_fixed())
            if chunk:
                yield chunk

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; raises `BodyTooLarge` as soon as it exceeds `limit` bytes."""
        if limit is not None and self.length is not None and self.length > limit:
            raise BodyTooLarge
        if self._on_first_read is None and not self._chunked and self._remaining <= _SMALL_BODY:
            return await self._read_small()
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            size += len(chunk)
            if limit is not None and size > limit:
                raise BodyTooLarge
            parts.append(chunk)
        return b"".join(parts)

    async def discard(self, limit: int) -> None:
        """Skip the rest of a body already refused, so the connection can be kept alive.

        A client still waiting for `100 Continue` is not asked for a body it need not send, and
        a body over `limit` is left unread (the connection is then closed instead).
        """
        waiting_for_continue = self._expects_continue and self._on_first_read is not None
        if waiting_for_continue or (self.length or 0) > limit:
            return
        skipped = 0
        async for chunk in self.chunks():
            skipped += len(chunk)
            if skipped > limit:
                return

    async def _read_small(self) -> bytes:
        # The common case (a Runtime API post, an event): a short body of known length, with
        # no 100 Continue to send, read in one call rather than through `chunks()`.
        if self._done:
            return b""
        try:
            data = await self._reader.readexactly(self._remaining)
        except asyncio.IncompleteReadError:
            raise ProtocolError("connection closed inside the request body") from None
        self._remaining = 0
        self._done = True
        return data

    async def _read_fixed(self) -> bytes:
        data = await self._reader.read(min(self._remaining, 64 * 1024))
        if not data:
            raise ProtocolError("connection closed inside the request body")
        self._remaining -= len(data)
        self._done = self._remaining == 0
        return data

    async def _read_chunk(self) -> bytes:
        # A chunk is read in pieces of at most 64 KiB, so a huge announced size costs nothing
        # until its bytes really arrive.
        if self._chunk_left == 0:
            line = await _readline(self._reader)
            if not line.endswith(b"\n"):
                raise ProtocolError("connection closed inside a chunked body")
            digits = line.split(b";", 1)[0].strip()
            if not digits or len(digits) > 16 or digits.strip(b"0123456789abcdefABCDEF"):
                raise ProtocolError(f"bad chunk size line {line[:40]!r}")
            size = int(digits, 16)
            if size == 0:
                self.trailers = await _read_header_block(self._reader)
                self._done = True
                return b""
            self._chunk_left = size
        data = await self._reader.read(min(self._chunk_left, _READ_SIZE))
        if not data:
            raise ProtocolError("connection closed inside a chunked body")
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and await self._read_crlf() != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
        return data

    async def _read_crlf(self) -> bytes:
        try:
            return await self._reader.readexactly(2)
        except asyncio.IncompleteReadError:
            raise ProtocolError("connection closed inside a chunked body") from None


@dataclass
class Request:
    """One parsed HTTP request; `path` and `query` are exactly as received (still %-encoded)."""

    method: str
    target: str
    path: str
    query: str
    version: str
    headers: Headers
    body: RequestBody
    client: tuple[str, int]


BodySource = bytes | AsyncIterable[bytes]


@dataclass
class Response:
    """An HTTP response; an async iterable body is sent with chunked transfer encoding."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: BodySource = b""


Handler = Callable[[Request], Awaitable[Response]]


def json_response(status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A JSON response with its content type set."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, [("Content-Type", "application/json"), *headers], body)


def small_reads(transport: asyncio.BaseTransport) -> None:
    """Make `transport` read at most 64 KiB at a time.

    asyncio's selector transports receive into a fresh 256 KiB buffer: an allocation that size
    is mapped and unmapped by the C library around every read (three more system calls, more
    than the read itself costs). Buffers of 64 KiB come from the heap and are reused.
    """
    if getattr(transport, "max_size", 0) > _READ_SIZE:
        transport.max_size = _READ_SIZE  # type: ignore[attr-defined]


class HTTPServer:
    """Serves `handler` on host:port (port 0 picks a free one) with HTTP/1.1 keep-alive."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def port(self) -> int:
        """The port actually bound (the configured one while not listening, e.g. for a handler
        mounted in another server, as `holdfast dev` mounts the front)."""
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        """The host bound."""
        return self._host

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await asyncio.start_server(
            self._serve_connection, self._host, self._port, limit=_READ_LIMIT
        )

    def abort_connections(self) -> None:
        """Drop every open connection, cancelling whatever their handlers still wait for."""
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        self.abort_connections()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        small_reads(writer.transport)
        peer = writer.get_extra_info("peername") or ("", 0)
        try:
            while await self._serve_one(reader, writer, (str(peer[0]), int(peer[1]))):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, StreamAborted):
            pass
        except asyncio.CancelledError:
            # Dropped by abort_connections(). Ending normally rather than as cancelled keeps
            # asyncio's stream callback from logging the cancellation as an error.
            pass
        except ProtocolError as exc:
            with contextlib.suppress(ConnectionError):
                await _write_response(writer, _bad_request(str(exc)), keep_alive=False)
        finally:
            self._connections.pop(task, None)
            writer.close()

    async def _serve_one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: tuple[str, int]
    ) -> bool:
        request = await _read_request(reader, writer, peer)
        if request is None:
            return False
        try:
            response = await self._handler(request)
        except (ProtocolError, ConnectionError, asyncio.IncompleteReadError):
            raise  # broken HTTP from the peer (answered 400) or a peer gone: not our error
        except Exception:
            _log.exception("unhandled error serving %s %s", request.method, request.path)
            response = Response(500, [("Content-Type", "text/plain")], b"internal error")
        # A body the handler left unread cannot be skipped safely: close instead.
        keep_alive = _wants_keep_alive(request) and request.body.complete
        await _write_response(
            writer, response, keep_alive=keep_alive, head=request.method == "HEAD"
        )
        return keep_alive


async def _read_header_block(reader: asyncio.StreamReader) -> Headers:
    # Usually the whole block has arrived with the request line: take it in one piece.
    buffered = getattr(reader, "_buffer", None)
    if isinstance(buffered, bytearray) and (end := _block_end(buffered)) is not None:
        return _parse_header_lines(await reader.readexactly(end))
    headers: list[tuple[str, str]] = []
    total = 0
    while True:
        line = await _readline(reader)
        total += len(line)
        if total > _MAX_HEADER_BYTES:
            raise ProtocolError("header section too large")
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        if line in (b"\r\n", b"\n"):
            return Headers(headers)
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"bad header line {line[:60]!r}")
        headers.append((name, value.strip()))


async def _readline(reader: asyncio.StreamReader) -> bytes:
    """One line; a line longer than the reader's limit is broken HTTP, not a server error."""
    try:
        return await reader.readline()
    except ValueError:  # asyncio.LimitOverrunError, re-raised by readline as ValueError
        raise ProtocolError("line too long") from None


def _block_end(buffered: bytearray) -> int | None:
    """The length of the header block at the start of `buffered`, up to and including the
    blank line that ends it (CRLF or a bare LF, as line by line), if all of it is there."""
    if buffered[:1] == b"\n":
        return 1
    if buffered[:2] == b"\r\n":
        return 2
    limit = _MAX_HEADER_BYTES + 1
    crlf = buffered.find(b"\n\r\n", 0, limit)
    lf = buffered.find(b"\n\n", 0, limit)
    if crlf < 0 and lf < 0:
        return None
    end = lf + 2 if crlf < 0 or 0 <= lf < crlf else crlf + 3
    return end if end <= _MAX_HEADER_BYTES else None


def _parse_header_lines(block: bytes) -> Headers:
    raw: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    for line in block.split(b"\n")[:-2]:  # the last two: the blank line and what follows it
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            shown = (line + b"\n")[:60]  # as read line by line: with its line end
            raise ProtocolError(f"bad header line {shown!r}")
        value = value.strip()
        raw.append((name, value))
        first.setdefault(name.lower(), value)
    return Headers(raw, first)


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: tuple[str, int]
) -> Request | None:
    line = await _readline(reader)
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between requests (RFC 9112 §2.2)
        line = await _readline(reader)
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ProtocolError(f"bad request line {line[:60]!r}")
    method, target, version = parts
    headers = await _read_header_block(reader)
    path, _, query = target.partition("?")
    return Request(
        method=method,
        target=target,
        path=path,
        query=query,
        version=version,
        headers=headers,
        body=_make_body(reader, writer, headers),
        client=peer,
    )


def _make_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: Headers
) -> RequestBody:
    chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
    length: int | None = None
    if not chunked and (raw := headers.get("Content-Length")) is not None:
        if not raw.isdigit():
            raise ProtocolError(f"bad Content-Length {raw!r}")
        length = int(raw)
    expects_continue = (headers.get("Expect") or "").lower() == "100-continue"

    async def send_continue() -> None:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()

    return RequestBody(
        reader,
        length=length,
        chunked=chunked,
        # Nothing to do before the first read unless the client waits for 100 Continue.
        on_first_read=send_continue if expects_continue else None,
        expects_continue=expects_continue,
    )


def _wants_keep_alive(request: Request) -> bool:
    connection = (request.headers.get("Connection") or "").lower()
    if request.version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"


async def _write_response(
    writer: asyncio.StreamWriter, response: Response, *, keep_alive: bool, head: bool = False
) -> None:
    body = response.body
    streaming = not isinstance(body, bytes)
    head_lines = [_status_line(response.status)]
    head_lines += [f"{name}: {value}" for name, value in response.headers]
    if streaming:
        head_lines.append("Transfer-Encoding: chunked")
    else:
        assert isinstance(body, bytes)
        head_lines.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        head_lines.append("Connection: close")
    head_bytes = ("\r\n".join(head_lines) + "\r\n\r\n").encode("latin-1")
    if head:
        writer.write(head_bytes)
        await writer.drain()
    elif isinstance(body, bytes):
        if len(body) < _SMALL_BODY:
            writer.write(head_bytes + body)  # one write: a small response leaves in one segment
        else:
            writer.write(head_bytes)
            writer.write(body)
        await writer.drain()
    else:
        writer.write(head_bytes)
        await _write_chunks(writer, body)


async def _write_chunks(writer: asyncio.StreamWriter, body: AsyncIterable[bytes]) -> None:
    await writer.drain()  # the status line and headers go out before the first chunk is ready
    async for chunk in body:
        if chunk:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


@functools.lru_cache(maxsize=64)
def _status_line(status: int) -> str:
    return f"HTTP/1.1 {status} {_reason(status)}"


def _bad_request(message: str) -> Response:
    return Response(400, [("Content-Type", "text/plain")], message.encode())
