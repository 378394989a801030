"""The client side of a plain socket, for the Runtime API client and the proxy's upstream:
``resolve``, a ``connect`` that tries each address in turn, and :class:`SocketReader`, which
reads answers straight from the socket.

Through an asyncio transport every wait for an answer is a full turn of the event loop or two
(the reader registered, the selector polled, the bytes handed to a protocol, a future resolved,
the waiting task scheduled and stepped). A :class:`SocketReader` has no transport: it asks the
socket only when a read needs more bytes, and with ``wait`` set it first waits for them in one
blocking ``poll`` while the loop is *quiet* — no callback ready to run, no timer due. That poll
watches two descriptors: the socket, and the loop's own selector, which becomes readable the
moment anything the loop waits for is ready (any watched socket, its self-pipe, which
``call_soon_threadsafe`` and signals write to: SIGTERM reaches the loop that way, see
:mod:`holdfast.hosts.shutdown`); it ends at the loop's next timer at the latest. So the wait ends
exactly when a turn of the loop would have had something to run, and then the read goes back to
the loop (``sock_recv``): nothing else ever waits longer for it. When the answer comes first, it
is read at once, with no turn of the loop at all.

The process may be frozen (SIGSTOP) inside the ``poll``, as inside any call: the thaw resumes it.
A loop without a pollable selector, or in debug mode (where a blocking wait would show as a slow
callback), is not watched: the socket alone is polled, for at most ``wait`` seconds when that is
finite, else the read waits on the loop.
"""

from __future__ import annotations

import asyncio
import math
import os
import select
import socket
from collections.abc import Sequence
from typing import Any

#: The most one read from the socket asks for.
RECV_SIZE = 64 * 1024
# The longest wait in the socket (asyncio's MAXIMUM_SELECT_TIMEOUT, a day, in milliseconds).
_MAX_WAIT_MS = 24 * 3600 * 1000

Address = tuple[int, Any]  # (family, sockaddr)


async def resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[Address]:
    """The addresses ``host:port`` names, for :func:`connect`."""
    try:
        # An address literal (Lambda's is 127.0.0.1:9001) needs no resolver thread.
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, address) for family, _, _, _, address in infos]


async def connect(
    loop: asyncio.AbstractEventLoop, addresses: Sequence[Address], *, wait: float = 0.0
) -> tuple[socket.socket, Address]:
    """A non-blocking TCP socket (no Nagle delay) connected to the first of ``addresses`` that
    answers, and that address; raises the last error when none does. On loopback the handshake
    is done by the time ``connect`` returns: checked at once, or within ``wait`` seconds, before
    the loop is asked to wait for it."""
    error: OSError | None = None
    for family, address in addresses:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # e.g. IPv6 off in this environment
            error = exc
            continue
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await _connected(loop, sock, address, wait)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock, (family, address)
    raise error or OSError("no address to connect to")


async def _connected(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, address: Any, wait: float
) -> None:
    try:
        sock.connect(address)
        return
    except BlockingIOError:
        pass
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    if not poller.poll(wait * 1000):
        writable = loop.create_future()

        def ready() -> None:
            if not writable.done():
                writable.set_result(None)

        loop.add_writer(sock, ready)
        try:
            await writable
        finally:
            loop.remove_writer(sock)
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, os.strerror(error))


class SocketReader(asyncio.StreamReader):
    """The reads :mod:`holdfast.http11.response` makes, straight from a socket with no transport.

    A :class:`asyncio.StreamReader` only by type (the parser reads from one): its reads are its
    own, over one buffer filled from the socket only when a read needs more bytes. ``wait``:
    how long the next bytes may be awaited in the socket while the loop is quiet (``0``: never;
    ``math.inf``: for as long as the loop stays quiet); see the module's docs.
    """

    def __init__(
        self, sock: socket.socket, loop: asyncio.AbstractEventLoop, *, limit: int, wait: float = 0.0
    ) -> None:
        super().__init__(limit=limit, loop=loop)
        self.wait = wait
        self._sock = sock
        self._sock_loop: Any = loop
        self._limit_bytes = limit
        self._data = bytearray()
        self._ended = False
        self._socket_poller = select.poll()  # the socket alone
        self._socket_poller.register(sock, select.POLLIN)
        self._poller = select.poll()  # the socket and, where it can be, the loop's selector
        self._poller.register(sock, select.POLLIN)
        self._watches_loop = _watch_loop(self._poller, loop)

    def at_eof(self) -> bool:
        return self._ended and not self._data

    def quiet(self) -> bool:
        """Whether every byte received was read and the socket has nothing more: the peer has
        neither closed it nor sent anything unasked."""
        # poll reports the peer's close, a reset and unasked bytes alike, without a recv.
        return not self._data and not self._ended and not self._socket_ready(0)

    def holds(self, size: int) -> bool:
        """Whether the next ``size`` bytes are here already (a read of them will not wait)."""
        return len(self._data) >= size

    # Only bytes separators are read here (the base class takes any buffer).
    async def readuntil(self, separator: bytes = b"\n") -> bytes:  # type: ignore[override]
        start = 0
        while (end := self._data.find(separator, start)) < 0:
            if len(self._data) > self._limit_bytes:
                raise asyncio.LimitOverrunError("separator not found in time", len(self._data))
            if self._ended:
                partial = bytes(self._data)
                self._data.clear()
                raise asyncio.IncompleteReadError(partial, None)
            start = max(0, len(self._data) - len(separator) + 1)
            await self._receive()
        end += len(separator)
        if end > self._limit_bytes:
            raise asyncio.LimitOverrunError("separator found too far on", end)
        return self._take(end)

    async def read(self, n: int = -1) -> bytes:
        if n < 0:
            while not self._ended:
                await self._receive()
            return self._take(len(self._data))
        if not self._data and not self._ended and n:
            await self._receive()
        return self._take(n)

    async def readexactly(self, n: int) -> bytes:
        while len(self._data) < n:
            if self._ended:
                partial = self._take(len(self._data))
                raise asyncio.IncompleteReadError(partial, n)
            await self._receive()
        return self._take(n)

    def _take(self, n: int) -> bytes:
        data = self._data
        if n >= len(data):
            self._data = bytearray()
            return bytes(data)
        taken = bytes(data[:n])
        del data[:n]
        return taken

    async def _receive(self) -> None:
        """Add the next bytes the socket has to the buffer (none: the stream has ended)."""
        data: bytes | None = None
        if self.wait:
            if self._sock_loop._ready:
                # Callbacks ready (often the very ones this task's last step scheduled): they
                # run first, then the socket is asked.
                await asyncio.sleep(0)
            if self._wait_quietly():
                data = self._receive_now()
        else:
            data = self._receive_now()
        if data is None:
            data = await self._sock_loop.sock_recv(self._sock, RECV_SIZE)
        if data:
            self._data += data
        else:
            self._ended = True

    def _receive_now(self) -> bytes | None:
        try:
            return self._sock.recv(RECV_SIZE)
        except BlockingIOError:
            return None

    def _wait_quietly(self) -> bool:
        """Wait in the socket while the loop has nothing to do; whether the socket has bytes."""
        loop = self._sock_loop
        if loop._ready:
            return self._socket_ready(0)
        timeout = None if math.isinf(self.wait) else self.wait * 1000
        if not self._watches_loop:
            # Nothing wakes this wait but the socket: bounded by `wait` alone, or not taken.
            return timeout is not None and self._socket_ready(timeout)
        if loop._scheduled:
            due = (loop._scheduled[0].when() - loop.time()) * 1000
            if due <= 0:
                return self._socket_ready(0)
            timeout = due if timeout is None else min(timeout, due)
        # As the loop's own select: a timer days away would overflow poll's timeout.
        timeout = _MAX_WAIT_MS if timeout is None else min(timeout, _MAX_WAIT_MS)
        fileno = self._sock.fileno()
        return any(fd == fileno for fd, _ in self._poller.poll(timeout))

    def _socket_ready(self, timeout_ms: float) -> bool:
        return bool(self._socket_poller.poll(timeout_ms))


def _watch_loop(poller: Any, loop: asyncio.AbstractEventLoop) -> bool:
    """Add ``loop``'s selector to ``poller``; whether it could be (see the module's docs)."""
    selector = getattr(loop, "_selector", None)
    fileno = getattr(selector, "fileno", None)
    usable = hasattr(loop, "_ready") and hasattr(loop, "_scheduled") and fileno is not None
    if not usable or loop.get_debug():
        return False
    poller.register(fileno(), select.POLLIN)  # type: ignore[misc]
    return True
