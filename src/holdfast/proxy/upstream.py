"""The proxy's HTTP/1.1 client to the app on loopback: a small pool of asyncio connections.

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
connect (measured: about half the proxy's cost per invocation) while a connection idle through
a real pause is never used. Under Lambda Managed Instances (several invocations at once, no
freeze) idle connections are reused for at most ``idle_timeout`` seconds. Either way, a reused
connection the server closed before answering is retried once on a fresh one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from holdfast._types import RawHeaders
from holdfast.http11.response import ProtocolError, ResponseHead, body_chunks, read_head

#: Seconds an idle connection may be reused where the environment can freeze (see above).
FREEZE_SAFE_IDLE = 0.5
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


class UpstreamError(ConnectionError):
    """The app could not be reached, or broke the HTTP exchange."""


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.time()

    def close(self) -> None:
        self.writer.close()


class UpstreamResponse:
    """The head of the app's response; :meth:`body` yields the body as it arrives."""

    def __init__(self, pool: Upstream, connection: _Connection, head: ResponseHead) -> None:
        self.status = head.status
        self.headers: RawHeaders = [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in head.fields
        ]
        self._pool = pool
        self._connection: _Connection | None = connection
        self._head = head

    async def body(self) -> AsyncIterator[bytes]:
        connection = self._connection
        assert connection is not None, "the body was read already"
        complete = False
        try:
            async for chunk in body_chunks(connection.reader, self._head):
                yield chunk
            complete = True
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
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
    """Connections to the app at ``host:port``; ``reuse``: no freeze between invocations."""

    def __init__(self, host: str, port: int, *, reuse: bool, idle_timeout: float) -> None:
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout if reuse else min(idle_timeout, FREEZE_SAFE_IDLE)
        self.reuse = self.idle_timeout > 0
        self._idle: list[_Connection] = []

    async def request(
        self, method: str, target: str, headers: RawHeaders, body: bytes
    ) -> UpstreamResponse:
        """Send one request; returns once the response head has arrived."""
        head = _request_head(method, target, headers, len(body))
        connection = self._take_idle()
        if connection is not None:
            try:
                return await self._exchange(connection, head, body)
            except _NothingReceived:
                pass  # the server closed the idle connection: once more on a new one
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=_READ_LIMIT)
        except OSError as exc:
            raise UpstreamError(
                f"cannot connect to the app at {self.host}:{self.port}: {exc}"
            ) from exc
        try:
            return await self._exchange(_Connection(reader, writer), head, body)
        except _NothingReceived as exc:
            raise UpstreamError(f"the app closed the connection without answering: {exc}") from None

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
            if fresh and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    async def _exchange(
        self, connection: _Connection, request_head: bytes, body: bytes
    ) -> UpstreamResponse:
        writer, reader = connection.writer, connection.reader
        try:
            writer.write(request_head + body if len(body) < _CHUNK else request_head)
            if len(body) >= _CHUNK:
                writer.write(body)
            await writer.drain()
            head = await read_head(reader, to_head_request=request_head.startswith(b"HEAD "))
        except ProtocolError as exc:
            connection.close()
            raise UpstreamError(f"the app sent a broken response head: {exc}") from exc
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            connection.close()
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise UpstreamError(f"the app broke off its response head: {exc!r}") from exc
            raise _NothingReceived(repr(exc)) from exc
        return UpstreamResponse(self, connection, head)


class _NothingReceived(Exception):
    """The connection failed before any byte of the answer: the request was not processed."""


def _request_head(method: str, target: str, headers: RawHeaders, length: int) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1")]
    for name, value in headers:
        if name in HOP_BY_HOP or name == b"content-length":
            continue
        if b"\r" in value or b"\n" in value:
            continue  # header injection: never forwarded
        lines.append(name + b": " + value + b"\r\n")
    if length or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        lines.append(b"content-length: %d\r\n" % length)
    lines.append(b"\r\n")
    return b"".join(lines)
