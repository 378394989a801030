"""Raw-socket test support for the HTTP/1.1 server: a real `HTTPServer` in a thread."""

import asyncio
import logging
import socket
import threading

from holdfast.http11.server import HTTPServer, Request, Response


class Served:
    """A running server: `port`, `exchange(raw)` (bytes in, everything answered until close)."""

    def __init__(self, handler, **options) -> None:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self.server = HTTPServer(handler, "127.0.0.1", 0, **options)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "server did not start"
        self.port = self.server.port

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.server.start())
        self._ready.set()
        self._loop.run_forever()

    def connect(self) -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return connection

    def exchange(self, raw: bytes) -> bytes:
        """Send `raw`, half-close, and read until the server closes (10 s at most per read)."""
        with self.connect() as connection:
            connection.sendall(raw)
            connection.shutdown(socket.SHUT_WR)
            return read_to_close(connection)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def read_to_close(connection: socket.socket) -> bytes:
    answer = b""
    try:
        while chunk := connection.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer


async def echo(request: Request) -> Response:
    """200 with the body received and the method/target, as the server parsed them."""
    body = await request.body.read()
    head = f"{request.method} {request.target} {request.version}\n".encode()
    return Response(200, [("Content-Type", "text/plain")], head + body)


class Complaints(logging.Handler):
    """Every record at WARNING or above, and every record carrying a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING or record.exc_info:
            self.records.append(record)
