"""One HTTP exchange through an ASGI app: the one place ASGI messages become a response.

The exchange plays the server's part for a single request: ``receive`` hands over the request
body, then reports a disconnect once the response is complete (as uvicorn does); ``send``
validates the response messages and passes them to a :class:`ResponseSink`: a
:class:`BufferedSink` for an ordinary Lambda response, a :class:`StreamSink` for one the host
streams. Both sinks answer the invocation the same way (``streaming``, ``wait``, ``take``,
``release``, ``response``), so :class:`holdfast.invocation.Invocation` never asks which it has.

The app's final ``send`` returns only once the host has handed the response over
(:meth:`Exchange.hand_over`): whatever the app does after its last body chunk (Starlette's
``BackgroundTasks`` run exactly there) cannot delay the response, however long it computes
before its first ``await``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from operator import itemgetter
from typing import Any, Protocol

from holdfast._types import Message, RawHeaders
from holdfast.errors import ASGIProtocolError
from holdfast.sources import HTTPResponse
from holdfast.sources.syntax import has_control, is_token

__all__ = ["AppEnded", "BufferedSink", "Exchange", "ResponseSink", "StreamSink"]

_NO_BODY_STATUSES = frozenset({204, 304})


class ResponseSink(Protocol):
    """Where a response goes as the app produces it (the exchange's side of a sink).

    Plain calls, not coroutines: the exchange makes one per ASGI message (a coroutine each would
    cost more than the work). ``write`` answers a future when the app must wait for room before
    it writes more (a streamed body the host has not taken), else ``None``.
    """

    def start(self, status: int, headers: RawHeaders) -> None: ...

    def write(self, chunk: bytes) -> asyncio.Future[None] | None: ...

    def close(self) -> None: ...


class BufferedSink:
    """Collects the whole response, for hosts that hand Lambda one JSON document."""

    __slots__ = ("_loop", "_waiter", "chunks", "headers", "status")

    #: A buffered response never streams: its outcome waits for the whole of it.
    streaming = False

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: RawHeaders = []
        self.chunks: list[bytes] = []

    def start(self, status: int, headers: RawHeaders) -> None:
        self.status = status
        self.headers = headers

    def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def close(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, app: asyncio.Future[Any]) -> None:
        """Wait until the response is complete or the app's task has ended."""
        self._waiter = waiter = self._loop.create_future()
        await asyncio.wait((waiter, app), return_when=asyncio.FIRST_COMPLETED)

    def release(self) -> None:
        """Nothing to release: the whole response is in hand before the host delivers it."""

    def response(self) -> HTTPResponse:
        return HTTPResponse(self.status, self.headers, b"".join(self.chunks))

    async def take(self, app: asyncio.Future[Any]) -> bytes | None:
        """The whole body as one chunk, then ``None``."""
        if not self.chunks:
            return None
        body = b"".join(self.chunks)
        self.chunks = []
        return body


class Exchange:
    """The server side of one request/response with an ASGI app."""

    __slots__ = (
        "_body",
        "_body_sent",
        "_disconnected",
        "_handed_over",
        "_handover",
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
        self._handed_over = False
        self._handover: asyncio.Future[None] | None = None
        self.head = head
        self.started = False
        self.complete = False

    def hand_over(self) -> None:
        """The host has delivered the response: the app's final ``send`` may return."""
        self._handed_over = True
        if self._handover is not None and not self._handover.done():
            self._handover.set_result(None)

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

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            more_body = message.get("more_body", False)
            room = self._write(message.get("body", b""), more_body)
            if room is not None:
                await room  # a streamed body the host has not taken yet
            if not more_body:
                handover = self._complete()
                if handover is not None:
                    await handover
        elif kind == "http.response.start":
            self._start(message)
        elif kind == "http.response.trailers":
            pass  # Lambda has no response trailers to carry them in.
        else:
            raise ASGIProtocolError(f"unexpected ASGI message {kind!r}")

    def _start(self, message: Message) -> None:
        if self.started:
            raise ASGIProtocolError("http.response.start was sent twice")
        status = message.get("status")
        if type(status) is not int or not 100 <= status <= 599:
            raise ASGIProtocolError(f"invalid HTTP status code {status!r}: expected 100-599")
        headers = _response_head(message.get("headers", ()))
        self.started = True
        if self.head or status in _NO_BODY_STATUSES:
            self.head = True  # from here on: a response that carries no body
        self._sink.start(status, headers)

    def _write(self, body: Any, more_body: bool) -> asyncio.Future[None] | None:
        """Pass a body chunk on; what to wait for before going on, if anything."""
        if not self.started:
            raise ASGIProtocolError("http.response.body was sent before http.response.start")
        if self.complete:
            raise ASGIProtocolError("http.response.body was sent after the response completed")
        if body and not self.head:
            return self._sink.write(bytes(body))
        return None

    def _complete(self) -> asyncio.Future[None] | None:
        """The last chunk is in: the response is complete. What the app's final ``send`` waits
        for before it returns (the hand-over), unless the host has handed it over already."""
        self.complete = True
        self._sink.close()
        if self._disconnected is not None and not self._disconnected.done():
            self._disconnected.set_result(None)
        if self._handed_over:
            return None
        self._handover = self._loop.create_future()
        return self._handover


def _response_head(raw: Any) -> RawHeaders:
    """The app's response headers as bytes pairs, lower-cased and checked (:func:`_check_fields`).

    Most responses carry only names seen (and checked) before, as ``bytes`` pairs: those are
    checked with C calls alone; anything else takes the full conversion.
    """
    try:
        if _valid_names.issuperset(map(_first, raw)) and _PAIRS.issuperset(map(len, raw)):
            values = list(map(_second, raw))
            if _BYTES_ONLY.issuperset(map(type, values)):
                if has_control(b"".join(values)):
                    _check_fields(raw)  # it raises, naming the header
                return list(map(tuple, raw))
    except TypeError:  # an unhashable name (a bytearray) or a pair that is not a pair
        pass
    headers = [(bytes(name).lower(), bytes(value)) for name, value in raw]
    _check_fields(headers)
    return headers


_first = itemgetter(0)
_second = itemgetter(1)
_BYTES_ONLY = frozenset({bytes})
_PAIRS = frozenset({2})


def _check_fields(headers: RawHeaders) -> None:
    """Refuse a head HTTP forbids (sources.syntax) before any of it is sent: a CR or LF in a
    value would split the response (an injected header or status line), a NUL end it early."""
    for name, _ in headers:
        if name not in _valid_names:
            if not is_token(name):
                raise ASGIProtocolError(
                    f"the response header name {name[:60]!r} is not an HTTP token:"
                    " refusing to send the response"
                )
            if len(_valid_names) < 1024:
                _valid_names.add(name)
    if has_control(b"".join([value for _, value in headers])):
        name = next(name for name, value in headers if has_control(value))
        raise ASGIProtocolError(
            f"the value of the response header {name[:60]!r} holds a control character"
            " (CR, LF, NUL, ...): refusing to send the response"
        )


# Response header names already found to be tokens: the same few come every time.
_valid_names: set[bytes] = set()


class StreamSink:
    """Hands the response to a host that streams it: the head as soon as the app starts its
    response, then the body chunk by chunk through :meth:`take`.

    A response whose status is in ``hold`` (the adapter's ``error_status_codes``) is buffered
    instead, for the host to report as a function error. At most ``_MAX_QUEUED`` chunks wait for
    the host; beyond that the app's ``send`` waits too.
    """

    __slots__ = (
        "_chunks",
        "_closed",
        "_following",
        "_hold",
        "_loop",
        "_released",
        "_taken",
        "_waiter",
        "headers",
        "held",
        "started",
        "status",
    )

    _MAX_QUEUED = 16

    def __init__(self, loop: asyncio.AbstractEventLoop, hold: frozenset[int]) -> None:
        self._loop = loop
        self._hold = hold
        self._chunks: deque[bytes] = deque()
        self._closed = False
        self._following = False
        self._released = False
        self._waiter: asyncio.Future[None] | None = None  # the host waiting for a chunk
        self._taken: asyncio.Future[None] | None = None  # the app waiting for room
        self.status = 0
        self.headers: RawHeaders = []
        self.started = False
        self.held = False

    @property
    def streaming(self) -> bool:
        """Whether the head is out for the host to stream (not held for its status)."""
        return self.started and not self.held

    def start(self, status: int, headers: RawHeaders) -> None:
        self.status, self.headers, self.started = status, headers, True
        self.held = status in self._hold
        self.wake()

    def write(self, chunk: bytes) -> asyncio.Future[None] | None:
        if self._released:
            return None  # the host is done with this response (its client went away)
        self._chunks.append(chunk)
        self.wake()
        if not self.held and len(self._chunks) > self._MAX_QUEUED:
            self._taken = self._loop.create_future()
            return self._taken  # the app waits for the host to take some
        return None

    def close(self) -> None:
        self._closed = True
        self.wake()

    def release(self) -> None:
        """The host takes no more chunks (it handed the response over, or could not deliver it):
        the app's writes from now on go nowhere, and one waiting for room goes on."""
        self._released = True
        self._chunks.clear()
        if self._taken is not None and not self._taken.done():
            self._taken.set_result(None)

    def _follow(self, app: asyncio.Future[Any]) -> None:
        """The app's task: its end wakes the host waiting in :meth:`wait` or :meth:`take`."""
        if not self._following:
            self._following = True
            app.add_done_callback(self._woken)

    def _woken(self, _: asyncio.Future[Any]) -> None:
        self.wake()

    def wake(self) -> None:
        """Wake the host waiting in :meth:`take` (also called when the app's task ends)."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, app: asyncio.Future[Any]) -> None:
        """Wait for the next change: the head, a chunk, the end, or the app's task ending."""
        self._follow(app)
        self._waiter = self._loop.create_future()
        await self._waiter

    def response(self) -> HTTPResponse:
        """The whole response held back for its status."""
        return HTTPResponse(self.status, self.headers, b"".join(self._chunks))

    async def take(self, app: asyncio.Future[Any]) -> bytes | None:
        """The next body chunk; ``None`` once the body is complete. Raises :class:`AppEnded`
        when the app's task ended first."""
        while not self._chunks:
            if self._closed:
                return None
            if app.done():
                raise AppEnded
            await self.wait(app)
        chunk = self._chunks.popleft()
        if self._taken is not None and not self._taken.done():
            self._taken.set_result(None)
        return chunk


class AppEnded(Exception):
    """The app's task ended before its streamed response was complete."""
