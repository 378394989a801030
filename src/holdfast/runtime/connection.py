"""The Runtime API client's connection: a plain socket, read when a read needs bytes, and an
answer awaited in the socket itself whenever the event loop has nothing else to do.

A runtime spends its life waiting for the Runtime API: for ``/next``'s event, for the 202 after
each response. Through an asyncio transport every such wait is a full turn of the event loop or
two (the reader registered, the selector polled, the bytes handed to a protocol, a future
resolved, the waiting task scheduled and stepped); awslambdaric waits in C instead. Here a read
first takes what the socket already holds, and when that is nothing and the loop is *quiet* — no
callback ready to run, no timer due, the loop in this thread — it waits in one blocking
``poll`` on two descriptors: the socket, and the loop's own selector. The selector's descriptor
becomes readable the moment anything the loop waits for is ready (any watched socket, its
self-pipe, which ``call_soon_threadsafe`` and signals write to — SIGTERM reaches the loop that
way, see :mod:`holdfast.hosts.shutdown`), and the poll ends at the loop's next timer. So the wait
ends exactly when a turn of the loop would have had something to run, and then the read goes
back to the loop (``sock_recv``): nothing else ever waits longer for it, and after-response work
is never starved. When the answer comes first, it is read at once, no turn of the loop at all.

The process may be frozen (SIGSTOP) inside the ``poll``, as inside any call: the thaw resumes it.
Loops without a pollable selector (not Linux/BSD epoll/kqueue) or in debug mode (where a
blocking wait would show as a slow callback) always wait on the loop.
"""

from __future__ import annotations

import asyncio
import select
import socket
from typing import Any

# Headers, a whole 6 MB event: the reader buffers at most one of these at a time.
_READ_LIMIT = 8 * 1024 * 1024
# The most one read from the socket asks for.
_RECV_SIZE = 64 * 1024
# The longest wait in the socket (asyncio's MAXIMUM_SELECT_TIMEOUT, a day, in milliseconds).
_MAX_WAIT_MS = 24 * 3600 * 1000


class Connection:
    """One open connection to the Runtime API: ``reader`` for answers, :meth:`send` for requests."""

    __slots__ = ("_loop", "reader", "sock")

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self._loop = loop
        self.reader: asyncio.StreamReader = _QuietReader(sock, loop)

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        """Connect to ``host:port`` (each address the name resolves to in turn)."""
        loop = asyncio.get_running_loop()
        error: OSError | None = None
        for family, address in await _addresses(loop, host, port):
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:  # e.g. IPv6 off in this environment
                error = exc
                continue
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.sock_connect(sock, address)
            except BaseException as exc:
                sock.close()
                if not isinstance(exc, OSError):
                    raise
                error = exc
                continue
            return cls(sock, loop)
        raise error or OSError(f"{host} resolves to no address")

    async def send(self, data: bytes) -> None:
        """Send all of ``data``: at once where the socket takes it (it nearly always does)."""
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            await self._loop.sock_sendall(self.sock, memoryview(data)[sent:])

    def close(self) -> None:
        self.sock.close()


async def _addresses(
    loop: asyncio.AbstractEventLoop, host: str, port: int
) -> list[tuple[int, Any]]:
    try:
        # An address literal (Lambda's is 127.0.0.1:9001) needs no resolver thread.
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, address) for family, _, _, _, address in infos]


class _QuietReader(asyncio.StreamReader):
    """A stream reader over a socket with no transport: it receives only when a read needs more,
    and waits for more in the socket while the loop is quiet (see the module's docstring)."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=_READ_LIMIT, loop=loop)
        self._sock = sock
        self._sock_loop = loop
        self._poller: Any = _quiet_poller(sock, loop)

    async def _wait_for_data(self, func_name: str) -> None:
        data = self._receive_now()
        if data is None and self._poller is not None:
            if self._sock_loop._ready:  # type: ignore[attr-defined]
                # Callbacks ready (often the very ones this task's last step scheduled): they
                # run first, then the socket is asked again.
                await asyncio.sleep(0)
                data = self._receive_now()
            if data is None and self._wait_quietly():
                data = self._receive_now()
        if data is None:
            data = await self._sock_loop.sock_recv(self._sock, _RECV_SIZE)
        if data:
            self.feed_data(data)
        else:
            self.feed_eof()

    def _receive_now(self) -> bytes | None:
        try:
            return self._sock.recv(_RECV_SIZE)
        except BlockingIOError:
            return None

    def _wait_quietly(self) -> bool:
        """Wait in the socket while the loop has nothing to do; whether the socket has bytes."""
        loop: Any = self._sock_loop
        if loop._ready:
            return False
        timeout_ms = None
        if loop._scheduled:
            timeout_ms = (loop._scheduled[0].when() - loop.time()) * 1000
            if timeout_ms <= 0:
                return False
            # As the loop's own select: a timer days away would overflow poll's timeout.
            timeout_ms = min(timeout_ms, _MAX_WAIT_MS)
        events = self._poller.poll(timeout_ms)
        return any(fd == self._sock.fileno() for fd, _ in events)


def _quiet_poller(sock: socket.socket, loop: asyncio.AbstractEventLoop) -> Any:
    """A ``poll`` object on ``sock`` and ``loop``'s selector, or ``None`` where the loop cannot
    be watched that way."""
    selector = getattr(loop, "_selector", None)
    fileno = getattr(selector, "fileno", None)
    usable = hasattr(loop, "_ready") and hasattr(loop, "_scheduled") and fileno is not None
    if not usable or loop.get_debug() or not hasattr(select, "poll"):
        return None
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(fileno(), select.POLLIN)  # type: ignore[misc]
    return poller
