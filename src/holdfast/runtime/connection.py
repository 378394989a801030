"""The Runtime API client's connection: a plain socket, read when a read needs bytes, and an
answer awaited in the socket itself whenever the event loop has nothing else to do
(:class:`holdfast.http11.client_socket.SocketReader`, with no bound on that wait).

A runtime spends its life waiting for the Runtime API: for ``/next``'s event, for the 202 after
each response. awslambdaric waits in C; through an asyncio transport each wait would be a turn of
the loop or two. The reader waits in the socket while the loop is quiet, and hands the wait back
to the loop the moment anything else is ready there (SIGTERM included), so after-response work
is never starved.
"""

from __future__ import annotations

import asyncio
import math
import socket

from holdfast.http11.client_socket import SocketReader, connect, resolve

# Headers, a whole 6 MB event: the reader buffers at most one of these at a time.
_READ_LIMIT = 8 * 1024 * 1024


class Connection:
    """One open connection to the Runtime API: ``reader`` for answers, :meth:`send` for requests."""

    __slots__ = ("_loop", "reader", "sock")

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self._loop = loop
        self.reader: asyncio.StreamReader = SocketReader(
            sock, loop, limit=_READ_LIMIT, wait=math.inf
        )

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        """Connect to ``host:port`` (each address the name resolves to in turn)."""
        loop = asyncio.get_running_loop()
        addresses = await resolve(loop, host, port)
        if not addresses:
            raise OSError(f"{host} resolves to no address")
        sock, _ = await connect(loop, addresses)
        return cls(sock, loop)

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
