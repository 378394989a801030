"""One invocation as it travels from a caller through an execution environment and back."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

FUNCTION_ERROR_UNHANDLED = "Unhandled"


def new_request_id() -> str:
    """A request id in the shape Lambda uses (a UUID4)."""
    return str(uuid.uuid4())


def new_trace_id() -> str:
    """An X-Ray trace header value: `Root=1-<epoch hex8>-<hex24>;Parent=<hex16>;Sampled=1`."""
    # Ids, not secrets: the seeded generator, without two getrandom() calls per invocation.
    root = f"1-{int(time.time()):08x}-{random.getrandbits(96):024x}"
    return f"Root={root};Parent={random.getrandbits(64):016x};Sampled=1"


def error_payload(error_type: str, message: str) -> bytes:
    """The JSON body Lambda returns for an error raised by the platform, not the function."""
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


@dataclass(frozen=True)
class InvokeRequest:
    """What a caller asks of the function: the raw event and the optional identity headers."""

    payload: bytes
    request_id: str = field(default_factory=new_request_id)
    client_context: str | None = None
    cognito_identity: str | None = None
    tenant_id: str | None = None


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


@dataclass
class FreezeRecord:
    """The life of one invocation in its environment, in `time.monotonic()` seconds.

    `response_sent_at` is when the runtime finished posting its response (or error) and it was
    handed to the caller; `frozen_at` is when the environment's process group was stopped after
    the runtime and every INVOKE extension had called `next` again. `frozen_at` stays None when
    the invocation ended otherwise: `outcome` is "frozen", "timeout", "exit" (the runtime or an
    extension died), "init_error" or "shutdown" (the emulator stopped mid-invocation).
    `frozen_at` is taken once /proc shows every process of the group stopped, so from that
    moment on nothing in the environment can make progress.
    """

    environment_id: int
    request_id: str
    cold: bool
    started_at: float
    thawed_at: float | None = None
    response_sent_at: float | None = None
    frozen_at: float | None = None
    outcome: str = "running"

    @property
    def post_response(self) -> float | None:
        """Seconds between the response and the freeze: the after-response work."""
        if self.response_sent_at is None or self.frozen_at is None:
            return None
        return self.frozen_at - self.response_sent_at


class Invocation:
    """An invocation inside an environment: its Lambda metadata and its two outcomes.

    `result` resolves as soon as the runtime posts a response (the caller is answered then);
    `finished` resolves once the environment is frozen or reset, ending the invocation.
    """

    def __init__(self, request: InvokeRequest, *, function_arn: str, record: FreezeRecord) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.request_id = request.request_id
        # One per attempt: an async retry keeps the request id but is a new invocation.
        self.invocation_id = str(uuid.uuid4())
        self.function_arn = function_arn
        self.trace_id = new_trace_id()
        self.record = record
        self.started_wall: float | None = None
        # SnapStart: how long the restore before this invocation took (a cold start).
        self.restore_ms: float | None = None
        self.response_started_at: float | None = None
        self.produced_bytes = 0
        # Set once `platform.runtimeDone` has been emitted for it.
        self.runtime_finished = False
        self.result: asyncio.Future[RuntimeResponse] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()
        self._callers: list[asyncio.Future[RuntimeResponse]] = []
        self.arm(0.0)

    def arm(self, timeout: float) -> None:
        """Start the invocation's clock: it must be over `timeout` seconds from now."""
        self.deadline = time.monotonic() + timeout
        self.deadline_ms = int((time.time() + timeout) * 1000)

    def respond(self, response: RuntimeResponse) -> bool:
        """Hand `response` to the caller unless one already was; says whether it was taken."""
        if self.result.done():
            return False
        if not isinstance(response.body, ResponseStream):
            self.record.response_sent_at = time.monotonic()
        self.result.set_result(response)
        callers, self._callers = self._callers, []
        for caller in callers:
            if not caller.done():
                caller.set_result(response)
        return True

    def response(self) -> asyncio.Future[RuntimeResponse]:
        """A future of the response for one caller; a caller giving up (cancelling it) leaves
        the invocation itself alone, as Lambda would. It is answered in the same step as
        `result`, not one round of the event loop later as a chained future would be."""
        if self.result.done():
            return self.result
        caller: asyncio.Future[RuntimeResponse] = self.result.get_loop().create_future()
        self._callers.append(caller)
        return caller

    def record_response_start(self) -> None:
        """The runtime began posting its response (or error)."""
        self.response_started_at = time.monotonic()

    def runtime_headers(self) -> list[tuple[str, str]]:
        """The `/next` response headers for this invocation (empty values are left out)."""
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", self.request_id),
            ("Lambda-Runtime-Invocation-Id", self.invocation_id),
            ("Lambda-Runtime-Deadline-Ms", str(self.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", self.function_arn),
            ("Lambda-Runtime-Trace-Id", self.trace_id),
            ("Lambda-Runtime-Client-Context", self.request.client_context or ""),
            ("Lambda-Runtime-Cognito-Identity", self.request.cognito_identity or ""),
            ("Lambda-Runtime-Aws-Tenant-Id", self.request.tenant_id or ""),
        ]
        return [(name, value) for name, value in headers if value]

    def extension_event(self) -> dict[str, Any]:
        """The INVOKE event extensions receive (it carries no payload)."""
        return {
            "eventType": "INVOKE",
            "deadlineMs": self.deadline_ms,
            "requestId": self.request_id,
            "invokedFunctionArn": self.function_arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": self.trace_id},
        }


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
