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
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Iterable
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
    parse_request_head,
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
        reader: _Connection,
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
        # no 100 Continue to send, usually here already with its head: taken without a wait
        # (and without arming the body timeout).
        if self._done:
            return b""
        data = self._reader.take(self._remaining)
        if data is None:
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
            line = await self._timed(self._reader.readline())
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
    #: Whether the client wants the connection kept after this request (its version and
    #: `Connection` header say so).
    keep_alive: bool = True
    _connection: _Connection | None = field(default=None, repr=False, compare=False)
    _answered: Response | None = field(default=None, repr=False, compare=False)

    def answer(self, response: Response) -> bool:
        """Write `response` now, from whichever callback produced it, rather than once the
        handler's task is woken to return it (which it then still does: `answered`).

        The peer then has its answer a round of the event loop sooner, e.g. a runtime its
        invocation the moment the front dispatches it. Only a whole answer can go early: a
        small body in bytes, to a request whose body has been read; otherwise (or if an answer
        went already) nothing is written and False is returned, and the handler's return is
        written as usual.
        """
        connection = self._connection
        body = response.body
        if (
            connection is None
            or self._answered is not None
            or not isinstance(body, bytes)
            or len(body) >= _SMALL_BODY
            or not self.body.complete
            or self.method == "HEAD"
        ):
            return False
        self._answered = response
        sendable = _refuse_forbidden_fields(self, response)
        _send_whole(connection, sendable, keep_alive=self.keep_alive)
        return True

    @property
    def answered(self) -> Response | None:
        """The response `answer` wrote, if any."""
        return self._answered


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
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        # Connections between requests (waiting for a head), oldest first: the ones to close
        # when the cap is reached.
        self._waiting: dict[asyncio.Task[None], _Connection] = {}
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
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            functools.partial(_Connection, self._serve_connection), self._host, self._port
        )
        # Asked once: the front puts it in every event it builds.
        self._bound_port = int(self._server.sockets[0].getsockname()[1])

    def keep_held(self) -> None:
        """Keep the answers held now (to requests pipelined behind; see `_Connection`) past
        this loop pass, each until its connection writes again or `release_held`: e.g. the
        runtime's 202 while the environment is frozen (nothing of it can read), which then
        leaves with its next event, in one piece."""
        for connection in self._connections.values():
            connection.keep_held()

    def release_held(self) -> None:
        """Write every answer held now."""
        for connection in self._connections.values():
            connection.release()

    def abort_connections(self) -> None:
        """Drop every open connection, cancelling whatever their handlers still wait for."""
        for task, connection in list(self._connections.items()):
            connection.abort()
            # One waiting for a request head ends at the end of stream the abort gives it.
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

    async def _serve_connection(self, connection: _Connection) -> None:
        task = connection.task
        if len(self._connections) >= self._max_connections and not self._make_room():
            self._refusals.note(self._max_connections)
            await _refuse_and_linger(connection)
            return
        self._connections[task] = connection
        timed = self._idle_timeout is not None or self._head_timeout is not None
        watch = _HeadWatch(task, self._idle_timeout, self._head_timeout) if timed else None
        connection.watch = watch
        try:
            while await self._serve_one(connection):
                pass
        except ProtocolError as exc:
            with contextlib.suppress(ConnectionError):
                await _write_response(connection, _refusal(exc), keep_alive=False)
        except (ConnectionError, asyncio.IncompleteReadError, StreamAborted, TimeoutError):
            pass
        except asyncio.CancelledError:
            # Dropped by abort_connections() or timed out by the watch: the connection just
            # ends (the task ends normally, nothing to report).
            pass
        finally:
            if watch is not None:
                watch.close()
            self._connections.pop(task, None)
            self._waiting.pop(task, None)
            connection.release()
            connection.close()
            await _closed(connection)

    def _make_room(self) -> bool:
        """Close the connection idle longest (waiting for a request head), if there is one."""
        oldest = next(iter(self._waiting), None)
        if oldest is None:
            return False
        connection = self._waiting.pop(oldest)
        del self._connections[oldest]
        connection.abort()
        return True

    async def _serve_one(self, connection: _Connection) -> bool:
        task, watch = connection.task, connection.watch
        self._waiting[task] = connection
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
        # A body the handler left unread cannot be skipped safely: close instead.
        keep_alive = request.keep_alive and request.body.complete
        if response is request.answered:
            if not connection.holding:
                await connection.drain()
            return keep_alive
        response = _refuse_forbidden_fields(request, response)
        await _write_response(
            connection, response, keep_alive=keep_alive, head=request.method == "HEAD"
        )
        return keep_alive


class _Connection(asyncio.Protocol):
    """One client connection: the bytes received so far, and the writes of its answers.

    The transport calls this protocol as bytes arrive; the connection's one task (started with
    the connection, it serves every request on it in turn) takes a request head, or a small
    body, straight from `buffer` when it is there, and waits (`readexactly`, `read`,
    `readline`) only for bytes still to come. So a request costs no reader object and no
    wake-up beyond the one its bytes' arrival gives the task.

    A small response to a request the client pipelined another one behind is held back
    (`hold`) until the end of the loop pass, after the next request's handler ran up to its
    first wait: a runtime that sends `/next` right behind its response is then frozen (its
    `/next` is what freezes it) before the 202 reaches it, and is woken once, at the thaw,
    instead of for the 202 and again for the SIGSTOP. Whatever is held goes out before
    anything else is written on the connection (`release`).
    """

    def __init__(self, serve: Callable[[_Connection], Coroutine[Any, Any, None]]) -> None:
        self._serve = serve
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None]
        self.watch: _HeadWatch | None = None
        self.client = ("", 0)
        self.buffer = bytearray()
        # The end of the stream came (the peer's FIN, or the connection is gone), and the
        # error it ended with, if any.
        self.eof = False
        self._error: BaseException | None = None
        self._reading_paused = False
        self._data_waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._held = b""
        self._release_handle: asyncio.Handle | None = None

    # -- the transport's callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        small_reads(transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client = (str(peer[0]), int(peer[1]))
        self.task = self._loop.create_task(self._serve(self))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()
        # Flow control: a peer sending faster than its requests are served waits.
        if len(self.buffer) > 2 * _READ_LIMIT and not self._reading_paused:
            assert self.transport is not None
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return True  # a half-closed peer still gets its answers

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._error = exc
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(ConnectionResetError("Connection lost"))
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # -- reading ------------------------------------------------------------------------------

    def take(self, size: int) -> bytes | None:
        """The next `size` bytes if all of them are here, else None (nothing is taken)."""
        buffer = self.buffer
        if len(buffer) < size:
            return None
        data = bytes(buffer[:size])
        del buffer[:size]
        if self._reading_paused and len(buffer) <= _READ_LIMIT:
            self._resume_reading()
        return data

    async def wait_for_data(self) -> None:
        """Until more bytes arrive or the stream ends; raises the error it ended with."""
        if self._error is not None:
            raise self._error
        if self.eof:
            return
        if self._reading_paused:
            self._resume_reading()
        waiter = self._data_waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._data_waiter = None
        if self._error is not None:
            raise self._error

    async def readexactly(self, size: int) -> bytes:
        """Exactly `size` bytes; `asyncio.IncompleteReadError` if the stream ends first."""
        while (data := self.take(size)) is None:
            if self.eof:
                partial = self.take(len(self.buffer)) or b""
                raise asyncio.IncompleteReadError(partial, size)
            await self.wait_for_data()
        return data

    async def read(self, size: int) -> bytes:
        """At most `size` bytes, as soon as there are any; b"" at the end of the stream."""
        while not self.buffer:
            if self.eof:
                return b""
            await self.wait_for_data()
        return self.take(min(size, len(self.buffer))) or b""

    async def readline(self) -> bytes:
        """A line with its LF (what is left, at the end of the stream); a line longer than
        1 MiB is broken HTTP (`ProtocolError`)."""
        searched = 0
        while (end := self.buffer.find(b"\n", searched)) < 0:
            if len(self.buffer) > _READ_LIMIT:
                raise ProtocolError("line too long")
            if self.eof:
                return self.take(len(self.buffer)) or b""
            searched = len(self.buffer)
            await self.wait_for_data()
        if end >= _READ_LIMIT:
            raise ProtocolError("line too long")
        return self.take(end + 1) or b""

    def _wake(self) -> None:
        waiter = self._data_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _resume_reading(self) -> None:
        self._reading_paused = False
        if self.transport is not None:
            self.transport.resume_reading()

    # -- writing ------------------------------------------------------------------------------

    @property
    def pipelined(self) -> bool:
        """Whether bytes of the client's next request are already here."""
        return bool(self.buffer)

    def write(self, data: bytes) -> None:
        """Send `data`, in one piece with whatever is held before it."""
        if self._held:
            data, self._held = self._held + data, b""
        self._cancel_release()
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the peer reads slower than the connection writes; raises once it is
        gone."""
        if self._lost.done():
            raise ConnectionResetError("Connection lost")
        if self._writing_paused:
            waiter = self._drain_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._drain_waiter = None

    @property
    def holding(self) -> bool:
        """Whether a written answer is held back (see `hold`)."""
        return bool(self._held)

    def hold(self, data: bytes) -> None:
        """Write `data` at the end of this loop pass (or sooner, with the next write)."""
        self._held += data
        if self._release_handle is None:
            self._release_handle = self._loop.call_soon(self.release)

    def keep_held(self) -> None:
        """Hold what is held past this loop pass: until the connection writes again, or
        `release`."""
        self._cancel_release()

    def release(self) -> None:
        """Write what is held now."""
        self._cancel_release()
        if self._held:
            data, self._held = self._held, b""
            assert self.transport is not None
            self.transport.write(data)

    def _cancel_release(self) -> None:
        if self._release_handle is not None:
            self._release_handle.cancel()
            self._release_handle = None

    def write_eof(self) -> None:
        """Half-close: the peer reads the end of the stream after what was written."""
        assert self.transport is not None
        if self.transport.can_write_eof():
            self.transport.write_eof()

    # -- ending -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close once what was written has gone out."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection now."""
        if self.transport is not None:
            self.transport.abort()

    async def closed(self) -> None:
        """Until the connection is gone."""
        await asyncio.shield(self._lost)


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


async def _closed(connection: _Connection) -> None:
    """Wait for a closing connection to be gone. A peer that reads nothing cannot hold the
    close: after a second the connection is aborted."""
    try:
        async with asyncio.timeout(1.0):
            await connection.closed()
    except TimeoutError:
        connection.abort()


async def _refuse_and_linger(connection: _Connection) -> None:
    """Answer 503 and close without losing the answer. Closing a socket whose request is still
    unread makes the kernel send a reset, which can destroy the 503 before the client reads
    it: so half-close, read off what the client sent (a bounded second and 64 KiB), then close."""
    try:
        connection.write(_TOO_MANY_CONNECTIONS)
        connection.write_eof()
        async with asyncio.timeout(1.0):
            received = 0
            while received < 65536 and (chunk := await connection.read(16384)):
                received += len(chunk)
    except (ConnectionError, TimeoutError, OSError):
        pass
    finally:
        connection.close()
        await _closed(connection)


_TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n"
)


async def _read_fields(connection: _Connection) -> tuple[Headers, Fields]:
    """A field block through the blank line that ends it (a head's fields, or trailers), and
    its framing fields (`Content-Length`, `Transfer-Encoding`) for `body_framing`."""
    # Usually the whole block has arrived already: take it in one piece.
    end = _block_end(connection.buffer)
    block = connection.take(end) if end is not None else None
    if block is None:
        block = await _read_block(connection)
    return _parse_block(block)


def _parse_block(block: bytes) -> tuple[Headers, Fields]:
    """The fields of a block that ends with its blank line, and its framing fields."""
    block = block[:-2] if block.endswith(b"\r\n") else block[:-1]
    return _headers(parse_fields(block, lower=False))


def _headers(raw: Fields) -> tuple[Headers, Fields]:
    """`Headers` of the fields `raw`, and their framing fields."""
    # The first value of each name wins: written last.
    first = {name.lower(): value for name, value in reversed(raw)}
    framing: Fields = []
    if "content-length" in first or "transfer-encoding" in first:
        for name, value in raw:
            if (lowered := name.lower()) in _FRAMING:
                framing.append((lowered, value))
    return Headers(raw, first), framing


async def _read_block(connection: _Connection) -> bytes:
    lines: list[bytes] = []
    total = 0
    while True:
        line = await connection.readline()
        total += len(line)
        if total > MAX_HEAD_BYTES:
            raise ProtocolError("header section too large")
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


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
    # Usually a whole head is waiting in the buffer, or comes in one piece: it is then taken
    # in one piece and split here, rather than line by line.
    buffer = connection.buffer
    if not buffer and not connection.eof:
        await connection.wait_for_data()
    head = None
    if buffer and buffer[0] not in _LINE_ENDS and (end := _block_end(buffer)) is not None:
        head = connection.take(end)
    if head is not None:
        method, target, version, raw = parse_request_head(head)
        headers, framing = _headers(raw)
    else:
        request_line = await _read_request_line(connection, line_read)
        if request_line is None:
            return None
        method, target, version = request_line
        headers, framing = await _read_fields(connection)
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
        keep_alive=_wants_keep_alive(version, headers),
        _connection=connection,
    )


_LINE_ENDS = b"\r\n"


async def _read_request_line(
    connection: _Connection, line_read: Callable[[], None] | None
) -> tuple[str, str, str] | None:
    """The request line read line by line (a head arriving in pieces, stray CRLFs before it);
    None when the connection ended before one."""
    line = await connection.readline()
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between requests (RFC 9112 §2.2)
        line = await connection.readline()
    if not line:
        return None
    if not line.endswith(b"\n"):
        if len(line) > MAX_HEAD_BYTES:
            raise ProtocolError("request line too long")
        raise asyncio.IncompleteReadError(line, None)
    request_line = parse_request_line(line)
    # The rest of the head gets its own, shorter, deadline unless it is all here already.
    if line_read is not None and _block_end(connection.buffer) is None:
        line_read()
    return request_line


def _make_body(
    connection: _Connection, headers: Headers, framing: Fields, timeout: float | None
) -> RequestBody:
    length, chunked = body_framing(framing) if framing else (None, False)
    expects = headers.get("Expect")
    expects_continue = expects is not None and expects.lower() == "100-continue"
    return RequestBody(
        connection,
        length=length,
        chunked=chunked,
        # Nothing to do before the first read unless the client waits for 100 Continue.
        on_first_read=functools.partial(_send_continue, connection) if expects_continue else None,
        expects_continue=expects_continue,
        timeout=timeout,
    )


async def _send_continue(connection: _Connection) -> None:
    connection.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    await connection.drain()


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


def _wants_keep_alive(version: str, headers: Headers) -> bool:
    connection = headers.get("Connection")
    if connection is None:
        return version != "HTTP/1.0"
    if version == "HTTP/1.0":
        return connection.lower() == "keep-alive"
    return connection.lower() != "close"


async def _write_response(
    connection: _Connection, response: Response, *, keep_alive: bool, head: bool = False
) -> None:
    body = response.body
    if head:
        connection.write(
            _head_bytes(response, len(body) if isinstance(body, bytes) else None, keep_alive)
        )
        await connection.drain()
    elif isinstance(body, bytes):
        if len(body) < _SMALL_BODY:
            _send_whole(connection, response, keep_alive=keep_alive)
            if connection.holding:
                return  # goes out at the end of this loop pass
        else:
            connection.write(_head_bytes(response, len(body), keep_alive))
            connection.write(body)
        await connection.drain()
    else:
        connection.write(_head_bytes(response, None, keep_alive))
        await _write_chunks(connection, body)


def _send_whole(connection: _Connection, response: Response, *, keep_alive: bool) -> None:
    """Write a response with a small bytes body in one piece (one segment); held back
    (`_Connection.hold`) when the client pipelined its next request behind this one."""
    body = response.body
    assert isinstance(body, bytes)
    data = _head_bytes(response, len(body), keep_alive) + body
    if keep_alive and connection.pipelined:
        connection.hold(data)
    else:
        connection.write(data)


def _head_bytes(response: Response, length: int | None, keep_alive: bool) -> bytes:
    """The status line and header fields; `length` None: a chunked body."""
    lines = [_status_line(response.status)]
    lines += [f"{name}: {value}" for name, value in response.headers]
    if length is None:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {length}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _write_chunks(connection: _Connection, body: AsyncIterable[bytes]) -> None:
    await connection.drain()  # the status line and headers go out before the first chunk is ready
    async for chunk in body:
        if chunk:
            connection.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await connection.drain()
    connection.write(b"0\r\n\r\n")
    await connection.drain()


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
