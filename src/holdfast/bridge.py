"""One HTTP exchange through an ASGI app: the one place ASGI messages become a response.

The exchange plays the server's part for a single request: ``receive`` hands over the request
body, then reports a disconnect once the response is complete (as uvicorn does); ``send``
validates the response messages and passes them to a :class:`ResponseSink`, which buffers them
for an ordinary Lambda response or streams them through the Runtime API.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from holdfast._types import Message, RawHeaders
from holdfast.sources import HTTPResponse

_NO_BODY_STATUSES = frozenset({204, 304})


class ASGIProtocolError(RuntimeError):
    """The app broke the ASGI HTTP protocol (bad status, messages out of order, ...)."""


class ResponseSink(Protocol):
    """Where a response goes as the app produces it."""

    async def start(self, status: int, headers: RawHeaders) -> None: ...

    async def write(self, chunk: bytes) -> None: ...

    async def close(self) -> None: ...


class BufferedSink:
    """Collects the whole response, for hosts that hand Lambda one JSON document."""

    __slots__ = ("chunks", "headers", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: RawHeaders = []
        self.chunks: list[bytes] = []

    async def start(self, status: int, headers: RawHeaders) -> None:
        self.status = status
        self.headers = headers

    async def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    async def close(self) -> None:
        pass

    def response(self) -> HTTPResponse:
        return HTTPResponse(self.status, self.headers, b"".join(self.chunks))


class Exchange:
    """The server side of one request/response with an ASGI app."""

    __slots__ = (
        "_body",
        "_body_sent",
        "_disconnected",
        "_loop",
        "_sink",
        "complete",
        "head",
        "started",
    )

    def __init__(
        self, body: bytes, sink: ResponseSink, loop: asyncio.AbstractEventLoop, *, head: bool
    ) -> None:
        self._body = body
        self._body_sent = False
        self._disconnected: asyncio.Future[None] | None = None
        self._loop = loop
        self._sink = sink
        self.head = head
        self.started = False
        self.complete = False

    async def receive(self) -> Message:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        if not self.complete:
            # Like a client that stays connected: wait until the response has been delivered.
            if self._disconnected is None:
                self._disconnected = self._loop.create_future()
            await self._disconnected
        return {"type": "http.disconnect"}

    def completion(self) -> asyncio.Future[None]:
        """A future resolved when the response is complete."""
        if self._disconnected is None:
            self._disconnected = self._loop.create_future()
            if self.complete:
                self._disconnected.set_result(None)
        return self._disconnected

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            await self._start(message)
        elif kind == "http.response.body":
            await self._write(message.get("body", b""), message.get("more_body", False))
        elif kind == "http.response.trailers":
            pass  # Lambda has no response trailers to carry them in.
        else:
            raise ASGIProtocolError(f"unexpected ASGI message {kind!r}")

    async def _start(self, message: Message) -> None:
        if self.started:
            raise ASGIProtocolError("http.response.start was sent twice")
        status = message.get("status")
        if type(status) is not int or not 100 <= status <= 599:
            raise ASGIProtocolError(f"invalid HTTP status code {status!r}: expected 100-599")
        headers = [
            (bytes(name).lower(), bytes(value)) for name, value in message.get("headers", ())
        ]
        self.started = True
        if self.head or status in _NO_BODY_STATUSES:
            self.head = True  # from here on: a response that carries no body
        await self._sink.start(status, headers)

    async def _write(self, body: Any, more_body: bool) -> None:
        if not self.started:
            raise ASGIProtocolError("http.response.body was sent before http.response.start")
        if self.complete:
            raise ASGIProtocolError("http.response.body was sent after the response completed")
        if body and not self.head:
            await self._sink.write(bytes(body))
        if not more_body:
            self.complete = True
            await self._sink.close()
            if self._disconnected is not None and not self._disconnected.done():
                self._disconnected.set_result(None)
