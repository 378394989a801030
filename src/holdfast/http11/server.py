"""A small HTTP/1.1 server on asyncio streams: the emulator's front and Runtime API, `holdfast dev`.

Only what those need, but all of that properly: keep-alive, `Content-Length` and chunked
request bodies (with trailers, which streamed Lambda responses use to report late errors),
`Expect: 100-continue` (libcurl sends it for large bodies), request bodies read incrementally,
and chunked responses written as their chunks are produced.

And it holds against hostile peers: requests are parsed strictly (`grammar`; broken HTTP is
answered 400 and closed, never logged as an error), keep-alive idling, a request head and each
body read may take at most `idle_timeout` / `head_timeout` / `body_timeout` seconds, and at
most `max_connections` are open: at the cap, a new connection closes the one waiting longest
for a request head, or is answered 503 when every connection is busy. A response header HTTP
forbids is never written (500, logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import resource
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from .grammar import (
    MAX_HEAD_BYTES,
    Fields,
    ProtocolError,
    body_framing,
    chunk_size,
    forbidden_field,
    parse_fields,
    parse_request_line,
)

__all__ = [
    "BodyTooLarge",
    "HTTPServer",
    "Headers",
    "ProtocolError",
    "Request",
    "RequestBody",
    "Response",
    "StreamAborted",
    "json_response",
]

_log = logging.getLogger("holdfast.http")
_T = TypeVar("_T")
_FRAMING = frozenset({"content-length", "transfer-encoding"})

_READ_LIMIT = 1024 * 1024
# Bodies of known length up to this size are read in one call.
_SMALL_BODY = 64 * 1024
# What one read from a socket asks for (see `small_reads`).
_READ_SIZE = 64 * 1024
#: The limits of a listener open to any client (the front, `holdfast dev`): keep-alive idling
#: (as nginx's), the rest of a request head, each wait for request body bytes.
IDLE_TIMEOUT = 75.0
HEAD_TIMEOUT = 15.0
BODY_TIMEOUT = 30.0


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


class RequestTimeout(ProtocolError):
    """The peer took too long to send its request's body; answered 408 and closed."""


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
        timeout: float | None = None,
    ) -> None:
        self._reader = reader
        self._timeout = timeout
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
            data = await self._timed(self._reader.readexactly(self._remaining))
        except asyncio.IncompleteReadError:
            raise ProtocolError("connection closed inside the request body") from None
        self._remaining = 0
        self._done = True
        return data

    async def _read_fixed(self) -> bytes:
        data = await self._timed(self._reader.read(min(self._remaining, _READ_SIZE)))
        if not data:
            raise ProtocolError("connection closed inside the request body")
        self._remaining -= len(data)
        self._done = self._remaining == 0
        return data

    async def _read_chunk(self) -> bytes:
        # A chunk is read in pieces of at most 64 KiB, so a huge announced size costs nothing
        # until its bytes really arrive.
        if self._chunk_left == 0:
            line = await self._timed(_readline(self._reader))
            if not line.endswith(b"\n"):
                raise ProtocolError("connection closed inside a chunked body")
            size = chunk_size(line)
            if size == 0:
                self.trailers, _ = await self._timed(_read_fields(self._reader))
                self._done = True
                return b""
            self._chunk_left = size
        data = await self._timed(self._reader.read(min(self._chunk_left, _READ_SIZE)))
        if not data:
            raise ProtocolError("connection closed inside a chunked body")
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and await self._read_crlf() != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
        return data

    async def _read_crlf(self) -> bytes:
        try:
            return await self._timed(self._reader.readexactly(2))
        except asyncio.IncompleteReadError:
            raise ProtocolError("connection closed inside a chunked body") from None

    async def _timed(self, read: Awaitable[_T]) -> _T:
        if self._timeout is None:
            return await read
        try:
            async with asyncio.timeout(self._timeout):
                return await read
        except TimeoutError:
            raise RequestTimeout(f"no request body byte for {self._timeout:g} s") from None


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
    """Serves `handler` on host:port (port 0 picks a free one) with HTTP/1.1 keep-alive.

    `idle_timeout` bounds the wait for a request line (keep-alive idling), `head_timeout` the
    rest of the head once it began (None: no bound, for the Runtime API, whose clients are
    frozen with connections open); `body_timeout` each wait for request body bytes;
    `max_connections` the open connections (default: what the descriptor limit leaves room
    for).
    """

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        idle_timeout: float | None = None,
        head_timeout: float | None = None,
        body_timeout: float | None = None,
        max_connections: int | None = None,
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._idle_timeout = idle_timeout
        self._head_timeout = head_timeout
        self._body_timeout = body_timeout
        self._max_connections = max_connections or default_max_connections()
        self._server: asyncio.Server | None = None
        self._bound_port = port
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        # Connections between requests (waiting for a head), oldest first: the ones to close
        # when the cap is reached.
        self._waiting: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._refusals = _Refusals()

    @property
    def port(self) -> int:
        """The port actually bound (the configured one while not listening, e.g. for a handler
        mounted in another server, as `holdfast dev` mounts the front)."""
        if self._server is None:
            return self._port
        return self._bound_port

    @property
    def host(self) -> str:
        """The host bound."""
        return self._host

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await asyncio.start_server(
            self._serve_connection, self._host, self._port, limit=_READ_LIMIT
        )
        # Asked once: the front puts it in every event it builds.
        self._bound_port = int(self._server.sockets[0].getsockname()[1])

    def abort_connections(self) -> None:
        """Drop every open connection, cancelling whatever their handlers still wait for."""
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            # One waiting for a request head ends at the end of stream the abort gives it; a
            # cancel could land as the peer's reset does, leaving that error never retrieved.
            if task not in self._waiting:
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
        if len(self._connections) >= self._max_connections and not self._make_room():
            self._refusals.note(self._max_connections)
            await _refuse_and_linger(reader, writer)
            return
        self._connections[task] = writer
        small_reads(writer.transport)
        timed = self._idle_timeout is not None or self._head_timeout is not None
        watch = _HeadWatch(task, self._idle_timeout, self._head_timeout) if timed else None
        connection = _Connection(task, reader, writer, watch)
        try:
            while await self._serve_one(connection):
                pass
        except ProtocolError as exc:
            with contextlib.suppress(ConnectionError):
                await _write_response(connection, _refusal(exc), keep_alive=False)
        except (ConnectionError, asyncio.IncompleteReadError, StreamAborted, TimeoutError):
            pass
        except asyncio.CancelledError:
            # Dropped by abort_connections(). Ending normally rather than as cancelled keeps
            # asyncio's stream callback from logging the cancellation as an error.
            pass
        finally:
            if watch is not None:
                watch.close()
            self._connections.pop(task, None)
            self._waiting.pop(task, None)
            connection.release()
            writer.close()
            await _closed(writer)

    def _make_room(self) -> bool:
        """Close the connection idle longest (waiting for a request head), if there is one."""
        oldest = next(iter(self._waiting), None)
        if oldest is None:
            return False
        writer = self._waiting.pop(oldest)
        del self._connections[oldest]
        writer.transport.abort()
        return True

    async def _serve_one(self, connection: _Connection) -> bool:
        task, watch = connection.task, connection.watch
        self._waiting[task] = connection.writer
        try:
            if watch is None:
                request = await _read_request(connection, self._body_timeout)
            else:
                watch.start()
                request = await _read_request(connection, self._body_timeout, watch.line_read)
        finally:
            self._waiting.pop(task, None)
            if watch is not None:
                watch.stop()
        if request is None:
            return False
        try:
            response = await self._handler(request)
        except (ProtocolError, ConnectionError, asyncio.IncompleteReadError):
            raise  # broken HTTP from the peer (answered 400) or a peer gone: not our error
        except Exception:
            _log.exception("unhandled error serving %s %s", request.method, request.path)
            response = Response(500, [("Content-Type", "text/plain")], b"internal error")
        response = _refuse_forbidden_fields(request, response)
        # A body the handler left unread cannot be skipped safely: close instead.
        keep_alive = _wants_keep_alive(request) and request.body.complete
        await _write_response(
            connection, response, keep_alive=keep_alive, head=request.method == "HEAD"
        )
        return keep_alive


class _Connection:
    """One client connection's state between its requests.

    A small response to a request the client pipelined another one behind is held back
    (`hold`) until the end of the loop pass, after the next request's handler ran up to its
    first wait: a runtime that sends `/next` right behind its response is then frozen (its
    `/next` is what freezes it) before the 202 reaches it, and is woken once, at the thaw,
    instead of for the 202 and again for the SIGSTOP. Whatever is held goes out before
    anything else is written on the connection (`release`).
    """

    __slots__ = ("_held", "_loop", "_release_handle", "client", "reader", "task", "watch", "writer")

    def __init__(
        self,
        task: asyncio.Task[None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        watch: _HeadWatch | None,
    ) -> None:
        self.task = task
        self.reader = reader
        self.writer = writer
        self.watch = watch
        peer = writer.get_extra_info("peername") or ("", 0)
        self.client = (str(peer[0]), int(peer[1]))
        self._loop = task.get_loop()
        self._held = b""
        self._release_handle: asyncio.Handle | None = None

    @property
    def pipelined(self) -> bool:
        """Whether bytes of the client's next request are already here."""
        return bool(getattr(self.reader, "_buffer", None))

    def hold(self, data: bytes) -> None:
        """Write `data` at the end of this loop pass (or sooner, with the next write)."""
        self._held += data
        if self._release_handle is None:
            self._release_handle = self._loop.call_soon(self.release)

    def release(self) -> None:
        """Write what is held now."""
        if self._release_handle is not None:
            self._release_handle.cancel()
            self._release_handle = None
        if self._held:
            data, self._held = self._held, b""
            self.writer.write(data)


class _HeadWatch:
    """The deadline of one connection's wait for its next request head: `idle` seconds for the
    request line (keep-alive idling), then `head` seconds for the rest of the head once it began
    (None: no bound). At the deadline the connection's task is cancelled, which closes it.

    One timer per connection, re-armed lazily: starting a wait only moves the deadline, and the
    timer, when it fires early, sets itself for the deadline then in force. A request costs no
    timer of its own (scheduling and cancelling one per request cost more than parsing it).
    """

    __slots__ = ("_deadline", "_handle", "_head", "_idle", "_loop", "_task")

    def __init__(self, task: asyncio.Task[None], idle: float | None, head: float | None) -> None:
        self._loop = task.get_loop()
        self._task = task
        self._idle = math.inf if idle is None else idle
        self._head = math.inf if head is None else head
        self._deadline: float | None = None  # None: not waiting for a head
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """The wait for a request line begins."""
        self._set(self._loop.time() + self._idle)

    def line_read(self) -> None:
        """The request line came and the rest of the head is still to come."""
        self._set(self._loop.time() + self._head)

    def stop(self) -> None:
        """The head is in (or the wait ended otherwise)."""
        self._deadline = None

    def close(self) -> None:
        """The connection is over."""
        self._deadline = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _set(self, deadline: float) -> None:
        self._deadline = deadline
        handle = self._handle
        if handle is not None and handle.when() <= deadline:
            return  # fires first and re-arms for the deadline then
        if handle is not None:
            handle.cancel()
        self._handle = None if deadline == math.inf else self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._handle = None
        deadline = self._deadline
        if deadline is None:
            return  # not waiting: the next wait arms a new timer
        if self._loop.time() >= deadline:
            self._task.cancel()
        else:
            self._handle = self._loop.call_at(deadline, self._fire)


def default_max_connections() -> int:
    """Half of what the descriptor limit leaves after a reserve (two servers share a process),
    at most 1,000: well short of the limit, so `accept` never fails for want of descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(8, min(1000, (soft - 128) // 2))


class _Refusals:
    """Counts connections refused at the cap; says so at most once every 10 s (no log flood)."""

    def __init__(self) -> None:
        self._count = 0
        self._said_at = -1e9

    def note(self, cap: int) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._said_at >= 10:
            _log.warning(
                "%d connection(s) refused with 503: %d open, every one busy with a request",
                self._count,
                cap,
            )
            self._count = 0
            self._said_at = now


async def _closed(writer: asyncio.StreamWriter) -> None:
    """Wait for a closed stream to be done: it keeps a peer's reset in a future of its own, and
    awaited here it is not reported as an exception never retrieved when the process exits. A
    peer that reads nothing cannot hold the close: after a second the connection is aborted."""
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except Exception:  # the reset itself, or any other way the connection ended
        pass


async def _refuse_and_linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer 503 and close without losing the answer. Closing a socket whose request is still
    unread makes the kernel send a reset, which can destroy the 503 before the client reads
    it: so half-close, read off what the client sent (a bounded second and 64 KiB), then close."""
    try:
        writer.write(_TOO_MANY_CONNECTIONS)
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(1.0):
            received = 0
            while received < 65536 and (chunk := await reader.read(16384)):
                received += len(chunk)
    except (ConnectionError, TimeoutError, OSError):
        pass
    finally:
        writer.close()
        await _closed(writer)


_TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n"
)


async def _read_fields(reader: asyncio.StreamReader) -> tuple[Headers, Fields]:
    """A field block through the blank line that ends it (a head's fields, or trailers), and
    its framing fields (`Content-Length`, `Transfer-Encoding`) for `body_framing`."""
    # Usually the whole block has arrived already: take it in one piece.
    buffered = getattr(reader, "_buffer", None)
    if isinstance(buffered, bytearray) and (end := _block_end(buffered)) is not None:
        block = await reader.readexactly(end)
    else:
        block = await _read_block(reader)
    return _parse_block(block)


def _parse_block(block: bytes) -> tuple[Headers, Fields]:
    """The fields of a block that ends with its blank line, and its framing fields."""
    block = block[:-2] if block.endswith(b"\r\n") else block[:-1]
    raw = parse_fields(block, lower=False)
    # The first value of each name wins: written last.
    first = {name.lower(): value for name, value in reversed(raw)}
    framing: Fields = []
    if "content-length" in first or "transfer-encoding" in first:
        for name, value in raw:
            if (lowered := name.lower()) in _FRAMING:
                framing.append((lowered, value))
    return Headers(raw, first), framing


async def _read_block(reader: asyncio.StreamReader) -> bytes:
    lines: list[bytes] = []
    total = 0
    while True:
        line = await _readline(reader)
        total += len(line)
        if total > MAX_HEAD_BYTES:
            raise ProtocolError("header section too large")
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


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
    limit = MAX_HEAD_BYTES + 1
    crlf = buffered.find(b"\n\r\n", 0, limit)
    lf = buffered.find(b"\n\n", 0, limit)
    if crlf < 0 and lf < 0:
        return None
    end = lf + 2 if crlf < 0 or 0 <= lf < crlf else crlf + 3
    return end if end <= MAX_HEAD_BYTES else None


async def _read_request(
    connection: _Connection,
    body_timeout: float | None,
    line_read: Callable[[], None] | None = None,
) -> Request | None:
    reader = connection.reader
    # Usually a whole head is waiting in the buffer, or comes in one piece: it is then read in
    # one call and split here, rather than line by line.
    buffered = getattr(reader, "_buffer", None)
    if not isinstance(buffered, bytearray):
        buffered = None
    elif not buffered and not reader.at_eof():
        await _wait_for_bytes(reader)
    if buffered and buffered[0] not in _LINE_ENDS and (end := _block_end(buffered)) is not None:
        head = await reader.readexactly(end)
        line_end = head.index(b"\n") + 1
        method, target, version = parse_request_line(head[:line_end])
        headers, framing = _parse_block(head[line_end:])
    else:
        request_line = await _read_request_line(reader, line_read)
        if request_line is None:
            return None
        method, target, version = request_line
        headers, framing = await _read_fields(reader)
    path, _, query = target.partition("?")
    return Request(
        method=method,
        target=target,
        path=path,
        query=query,
        version=version,
        headers=headers,
        body=_make_body(connection, headers, framing, body_timeout),
        client=connection.client,
    )


_LINE_ENDS = b"\r\n"


async def _wait_for_bytes(reader: asyncio.StreamReader) -> None:
    """Until the reader holds a byte, or the peer ended the stream (the slow path then reads)."""
    # StreamReader has no public "wait for data" that consumes nothing: its own helper, where
    # it has one; without, the line-by-line path does the waiting.
    wait = getattr(reader, "_wait_for_data", None)
    if wait is not None:
        await wait("readline")


async def _read_request_line(
    reader: asyncio.StreamReader, line_read: Callable[[], None] | None
) -> tuple[str, str, str] | None:
    """The request line read line by line (a head arriving in pieces, stray CRLFs before it);
    None when the connection ended before one."""
    line = await _readline(reader)
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between requests (RFC 9112 §2.2)
        line = await _readline(reader)
    if not line:
        return None
    if not line.endswith(b"\n"):
        if len(line) > MAX_HEAD_BYTES:
            raise ProtocolError("request line too long")
        raise asyncio.IncompleteReadError(line, None)
    request_line = parse_request_line(line)
    # The rest of the head gets its own, shorter, deadline unless it is all here already.
    buffered = getattr(reader, "_buffer", None)
    complete = isinstance(buffered, bytearray) and _block_end(buffered) is not None
    if line_read is not None and not complete:
        line_read()
    return request_line


def _make_body(
    connection: _Connection, headers: Headers, framing: Fields, timeout: float | None
) -> RequestBody:
    length, chunked = body_framing(framing) if framing else (None, False)
    expects = headers.get("Expect")
    expects_continue = expects is not None and expects.lower() == "100-continue"
    return RequestBody(
        connection.reader,
        length=length,
        chunked=chunked,
        # Nothing to do before the first read unless the client waits for 100 Continue.
        on_first_read=functools.partial(_send_continue, connection) if expects_continue else None,
        expects_continue=expects_continue,
        timeout=timeout,
    )


async def _send_continue(connection: _Connection) -> None:
    connection.release()
    connection.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    await connection.writer.drain()


def _refuse_forbidden_fields(request: Request, response: Response) -> Response:
    """`response`, or a 500 in its place if one of its headers would split the message."""
    bad = forbidden_field(response.headers)
    if bad is None:
        return response
    _log.error(
        "refused the response to %s %s: header %r: %r is not valid HTTP (a control character "
        "such as CR, LF or NUL, or a name that is not a token); answered 500 instead",
        request.method,
        request.path[:200],
        bad[0][:60],
        bad[1][:60],
    )
    return Response(500, [("Content-Type", "text/plain")], b"internal error")


def _wants_keep_alive(request: Request) -> bool:
    connection = (request.headers.get("Connection") or "").lower()
    if request.version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"


async def _write_response(
    connection: _Connection, response: Response, *, keep_alive: bool, head: bool = False
) -> None:
    writer = connection.writer
    connection.release()
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
            data = head_bytes + body  # one write: a small response leaves in one segment
            if keep_alive and connection.pipelined:
                connection.hold(data)
                return
            writer.write(data)
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


def _refusal(exc: ProtocolError) -> Response:
    status = 408 if isinstance(exc, RequestTimeout) else 400
    return Response(status, [("Content-Type", "text/plain")], str(exc).encode("latin-1", "replace"))
