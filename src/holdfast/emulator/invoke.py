"""What a caller sends the function and what comes back: the Invoke API's values.

`InvokeRequest` in, `RuntimeResponse` (a payload, a `ResponseStream` or an error) from the runtime,
`InvokeResult` to a programmatic caller once the payload is read.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

FUNCTION_ERROR_UNHANDLED = "Unhandled"


# A UUID's version 4 and RFC 4122 variant bits, and the bits random ones may take.
_UUID4_BITS = (4 << 76) | (2 << 62)
_UUID4_RANDOM = ~((0xF << 76) | (3 << 62)) & ((1 << 128) - 1)
#: The generator of the emulator's ids: its own (seeded from the system's randomness), so that
#: code seeding `random` (tests, Hypothesis) cannot make two invocations draw the same id.
ids = random.Random()


def new_request_id() -> str:
    """A request id in the shape Lambda uses (a UUID4).

    Ids, not secrets: drawn from a pseudo-random generator rather than `uuid.uuid4()`, which
    asks the kernel for randomness and builds a `UUID` object on every invocation.
    """
    digits = "%032x" % (ids.getrandbits(128) & _UUID4_RANDOM | _UUID4_BITS)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def error_payload(error_type: str, message: str) -> bytes:
    """The JSON body Lambda returns for an error raised by the platform, not the function."""
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class TooManyRequests(Exception):
    """Every execution environment is busy and no other may start: Lambda's 429
    `TooManyRequestsException` (`ReservedFunctionConcurrentInvocationLimitExceeded`)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Rate Exceeded: all {limit} execution environments are busy")
        self.limit = limit


@dataclass(frozen=True)
class InvokeRequest:
    """What a caller asks of the function: the raw event and the optional identity headers."""

    payload: bytes
    request_id: str = field(default_factory=new_request_id)
    client_context: str | None = None
    cognito_identity: str | None = None
    tenant_id: str | None = None
    #: Called with the response the moment the runtime posts it, before the caller's own wait
    #: ends (the HTTP front answers its client from there, a round of the event loop sooner).
    reply: Callable[[RuntimeResponse], object] | None = field(
        default=None, compare=False, repr=False
    )


class StreamError(Exception):
    """A streamed response ended with an error after its first byte."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("errorMessage", "stream failed"))
        self.error = error


class ResponseStream:
    """The body of a streamed response: fed by the Runtime API, read by the caller as it comes."""

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type
        self.error: dict[str, Any] | None = None
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closed = False

    def feed(self, chunk: bytes) -> None:
        """Append a piece of the body."""
        if not self._closed:
            self._queue.put_nowait(chunk)

    def finish(self, error: dict[str, Any] | None = None) -> None:
        """End the body; `error` (from the error trailers) makes the reader raise `StreamError`."""
        if not self._closed:
            self._closed = True
            self.error = error
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk
        if self.error is not None:
            raise StreamError(self.error)

    async def read(self) -> bytes:
        """The whole body; raises `StreamError` if the stream ended with an error."""
        return b"".join([chunk async for chunk in self])


@dataclass
class RuntimeResponse:
    """What came back for an invocation: a payload, a stream, or an error (`error_type` set)."""

    body: bytes | ResponseStream
    content_type: str = "application/json"
    error_type: str | None = None

    @property
    def is_error(self) -> bool:
        """True for a function error (reported by the runtime, or a timeout or crash)."""
        return self.error_type is not None

    @property
    def failed(self) -> bool:
        """True for a function error, including one reported after a stream started."""
        return self.is_error or (isinstance(self.body, ResponseStream) and bool(self.body.error))

    async def buffered(self) -> RuntimeResponse:
        """This response with a streamed body read in full; a late stream error becomes the body."""
        if not isinstance(self.body, ResponseStream):
            return self
        try:
            body = await self.body.read()
        except StreamError as exc:
            error_type = str(exc.error.get("errorType", "Runtime.Unknown"))
            return RuntimeResponse(json.dumps(exc.error).encode(), error_type=error_type)
        return RuntimeResponse(body, self.content_type)

    @classmethod
    def platform_error(cls, error_type: str, message: str) -> RuntimeResponse:
        """An error raised by the platform on the function's behalf (timeout, crash, ...)."""
        return cls(error_payload(error_type, message), error_type=error_type)


@dataclass(frozen=True)
class InvokeResult:
    """The answer to an invocation, as the Invoke API gives it (the payload fully read)."""

    request_id: str
    payload: bytes
    function_error: str | None = None
    content_type: str = "application/json"

    @property
    def ok(self) -> bool:
        """True unless the invocation ended in a function error."""
        return self.function_error is None

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return json.loads(self.payload)

    @property
    def error_type(self) -> str | None:
        """The `errorType` of a function error, if any."""
        if self.ok:
            return None
        try:
            error_type = self.json().get("errorType")
        except (ValueError, AttributeError):
            return None
        return error_type if isinstance(error_type, str) else None
