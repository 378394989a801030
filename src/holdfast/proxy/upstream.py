"""The proxy's HTTP/1.1 client to the app on loopback: a small pool of connections.

Only what a reverse proxy in front of one local server needs: requests with a known body length,
responses with ``Content-Length``, chunked encoding or read-to-close bodies, read as they arrive
(so streamed responses stream).

Connections and the freeze: Lambda freezes the environment between invocations, the app's
server with it. A kept-alive connection that sat idle across a freeze may be closed by the
server the moment it thaws (its keep-alive timer fired long ago), racing the proxy's next
request on it — the "connection reset after a thaw" LWA users meet (LWA issue #830). So when
the environment may freeze between invocations (``reuse=False``: one invocation at a time), an
idle connection is reused only within ``FREEZE_SAFE_IDLE`` seconds on the wall clock (which
advances through a freeze, and across a SnapStart snapshot): far below any server's keep-alive
timeout (uvicorn and Node 5 s, gunicorn 2 s), so back-to-back invocations skip a loopback
connect while a connection idle through a real pause is never used. Under Lambda Managed
Instances (several invocations at once, no freeze) idle connections are reused for at most
``idle_timeout`` seconds.

A request is never sent twice: one that went out on a connection the app then closed without
answering gets a :class:`UpstreamError` (the app may have acted on it). The only retry, on a new
connection, is for a reused connection found closed before anything was sent on it.

The cost per request (measured in ``bench/proxy_transport.py``, and as holdfast's own share
in ``bench/proxy.py``): each connection is a plain non-blocking socket the proxy reads itself (a
read asks the socket only when it needs bytes; no transport, protocol or waiter future in
between), and where one invocation at a time runs (``exclusive``) the proxy waits up to
``ANSWER_WAIT`` for the app's answer in a blocking ``poll`` right after sending, not in a turn
of the event loop: nothing else in the proxy has work to do meanwhile, and the answer is read
the moment it arrives.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from holdfast._types import RawHeaders
from holdfast.http11.client_socket import SocketReader, connect, resolve
from holdfast.http11.response import ProtocolError, ResponseHead, body_chunks, read_head

#: Seconds an idle connection may be reused where the environment can freeze (see above).
FREEZE_SAFE_IDLE = 0.5
#: Seconds the proxy waits for the app's answer without returning to the event loop, where one
#: invocation at a time runs; a slower answer is then awaited on the loop as usual.
ANSWER_WAIT = 0.005
_READ_LIMIT = 1024 * 1024
_CHUNK = 64 * 1024
# Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own business with each side.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# What a request's client headers never carry on: the proxy frames the body itself.
_NOT_FORWARDED = HOP_BY_HOP | {b"content-length"}


class UpstreamError(ConnectionError):
    """The app could not be reached, or broke the HTTP exchange."""


class _Connection:
    __slots__ = ("idle_since", "reader", "sock")

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.reader = SocketReader(sock, loop, limit=_READ_LIMIT)
        self.idle_since = time.time()

    def open_and_quiet(self) -> bool:
        """Whether the app has neither closed the connection nor sent anything unasked."""
        return self.reader.quiet()

    def close(self) -> None:
        self.sock.close()


class UpstreamResponse:
    """The head of the app's response; :meth:`body` yields the body as it arrives."""

    def __init__(self, pool: Upstream, connection: _Connection, head: ResponseHead) -> None:
        self.status = head.status
        #: The body's length when the head announced it (``None``: chunked, or to the end).
        self.length = head.length
        #: The end-to-end headers: the hop-by-hop ones are this connection's business.
        self.headers: RawHeaders = []
        for name, value in head.fields:
            raw = name.encode("latin-1")
            if raw not in HOP_BY_HOP:
                self.headers.append((raw, value.encode("latin-1")))
        self._pool = pool
        self._connection: _Connection | None = connection
        self._head = head

    async def body(self) -> AsyncIterator[bytes]:
        connection = self._connection
        assert connection is not None, "the body was read already"
        complete = False
        reader, length = connection.reader, self._head.length
        try:
            if length is not None and reader.holds(length):
                # Here whole (the usual small answer): in one piece, read as read_response does.
                if length:
                    yield await reader.readexactly(length)
            else:
                async for chunk in body_chunks(reader, self._head):
                    yield chunk
            complete = True
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise UpstreamError(f"the app broke off its response: {exc!r}") from exc
        finally:
            self._connection = None
            self._pool.release(connection, reusable=complete and self._head.keep_alive)

    def discard(self) -> None:
        """Drop the connection without reading the body (it cannot be reused)."""
        if self._connection is not None:
            self._pool.release(self._connection, reusable=False)
            self._connection = None


class Upstream:
    """Connections to the app at ``host:port``; ``reuse``: no freeze between invocations;
    ``exclusive``: one invocation at a time (the answer is awaited off the event loop)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        reuse: bool,
        idle_timeout: float,
        exclusive: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout if reuse else min(idle_timeout, FREEZE_SAFE_IDLE)
        self.reuse = self.idle_timeout > 0
        self.answer_wait = ANSWER_WAIT if exclusive else 0.0
        self._idle: list[_Connection] = []
        self._addresses: list[tuple[int, Any]] = []
        self._host = f"{host}:{port}".encode()

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes,
        *,
        own: Sequence[tuple[bytes, bytes]] = (),
    ) -> UpstreamResponse:
        """Send one request; returns once the response head has arrived.

        ``headers`` are the client's: hop-by-hop ones, ``Content-Length`` (the body is framed
        here), any value with a line break (header injection) and any named as one of ``own``
        (the caller's own headers, sent as given) are not sent on. Without a ``Host``, the
        app's address is sent as the host.
        """
        head = _request_head(method, target, headers, own, len(body), self._host)
        message = head + body
        connection = self._take_idle()
        if connection is not None:
            try:
                return await self._exchange(connection, message, head)
            except _NothingSent:
                pass  # closed as the request went out, before any of it: once more, anew
        connection = await self._connect()
        try:
            return await self._exchange(connection, message, head)
        except _NothingSent as exc:
            raise UpstreamError(f"the app closed the connection at once: {exc}") from None

    def release(self, connection: _Connection, *, reusable: bool) -> None:
        if reusable and self.reuse:
            connection.idle_since = time.time()
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take_idle(self) -> _Connection | None:
        now = time.time()
        while self._idle:
            connection = self._idle.pop()
            fresh = 0 <= now - connection.idle_since < self.idle_timeout
            if fresh and connection.open_and_quiet():
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            addresses = self._addresses or await self._resolve(loop)
            # Each of the host's addresses in turn (``localhost`` may name ::1 first while the
            # app listens on 127.0.0.1 only); the first that answers is tried first from then on.
            sock, answered = await connect(loop, addresses, wait=self.answer_wait)
        except OSError as exc:
            raise UpstreamError(
                f"cannot connect to the app at {self.host}:{self.port}: {exc}"
            ) from None
        if addresses[0] != answered:
            self._addresses = [answered, *(other for other in addresses if other != answered)]
        return _Connection(sock, loop)

    async def _resolve(self, loop: asyncio.AbstractEventLoop) -> list[tuple[int, Any]]:
        # Once: the app's address does not change while the proxy runs.
        self._addresses = await resolve(loop, self.host, self.port)
        return self._addresses

    async def _exchange(
        self, connection: _Connection, message: bytes, request_head: bytes
    ) -> UpstreamResponse:
        sock = connection.sock
        sent = 0
        try:
            try:
                sent = sock.send(message)
            except BlockingIOError:
                pass
            if sent < len(message):
                await asyncio.get_running_loop().sock_sendall(sock, memoryview(message)[sent:])
                sent = len(message)
            reader = connection.reader
            reader.wait = self.answer_wait
            head = await read_head(reader, to_head_request=request_head.startswith(b"HEAD "))
            if head.length is None:
                # A chunked or read-to-close body may be a stream that takes its time: awaited
                # on the loop. One of known length is on its way (the app has it in hand).
                reader.wait = 0.0
        except ProtocolError as exc:
            connection.close()
            raise UpstreamError(f"the app sent a broken response head: {exc}") from exc
        except asyncio.CancelledError:
            connection.close()  # mid-exchange: in no state to be used again
            raise
        except (OSError, asyncio.IncompleteReadError) as exc:
            connection.close()
            if not sent and isinstance(exc, ConnectionError):
                raise _NothingSent(repr(exc)) from exc
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise UpstreamError(f"the app broke off its response head: {exc!r}") from exc
            raise UpstreamError(
                f"the app closed the connection without answering: {exc!r}"
            ) from exc
        return UpstreamResponse(self, connection, head)


class _NothingSent(Exception):
    """The connection failed before any byte of the request went out: nothing can have been
    processed, so the request may go out again on a new connection."""


def _request_head(
    method: str,
    target: str,
    headers: Iterable[tuple[bytes, bytes]],
    own: Sequence[tuple[bytes, bytes]],
    length: int,
    default_host: bytes,
) -> bytes:
    # One pass over the client's headers: this runs on every request.
    skipped = _NOT_FORWARDED.union(name for name, _ in own) if own else _NOT_FORWARDED
    parts = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1")]
    host = False
    for name, value in headers:
        if name in skipped or b"\r" in value or b"\n" in value:
            continue
        if name == b"host":
            host = True
        parts += (name, b": ", value, b"\r\n")
    if not host:
        parts += (b"host: ", default_host, b"\r\n")
    for name, value in own:
        parts += (name, b": ", value, b"\r\n")
    if length or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        parts.append(b"content-length: %d\r\n" % length)
    parts.append(b"\r\n")
    return b"".join(parts)
