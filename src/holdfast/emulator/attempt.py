"""One attempt at an invoke request inside an execution environment, and its freeze record.

Lambda counts each attempt as an invocation of its own (an async retry keeps the request id but
gets a new invocation id); the emulator calls it an `Attempt` so that "invocation" keeps meaning
holdfast's core `Invocation`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from .invoke import InvokeRequest, ResponseStream, RuntimeResponse, ids, new_request_id


def new_trace_id() -> str:
    """An X-Ray trace header value: `Root=1-<epoch hex8>-<hex24>;Parent=<hex16>;Sampled=1`."""
    # Ids, not secrets: a pseudo-random generator, without two getrandom() calls per invocation.
    root = f"1-{int(time.time()):08x}-{ids.getrandbits(96):024x}"
    return f"Root={root};Parent={ids.getrandbits(64):016x};Sampled=1"


@dataclass
class FreezeRecord:
    """The life of one attempt in its environment, in `time.monotonic()` seconds.

    `response_sent_at` is when the runtime finished posting its response (or error) and it was
    handed to the caller; `frozen_at` is when the environment's process group was stopped after
    the runtime and every INVOKE extension had called `next` again. `frozen_at` stays None when
    the invocation ended otherwise: `outcome` is "frozen", "timeout", "exit" (the runtime or an
    extension died), "init_error" or "shutdown" (the emulator stopped mid-attempt).
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


class Attempt:
    """An invocation inside an environment: its Lambda metadata and its two outcomes.

    `result` resolves as soon as the runtime posts a response (the caller is answered then);
    `finished` resolves once the environment is frozen or reset, ending the invocation.
    """

    def __init__(
        self,
        request: InvokeRequest,
        *,
        function_arn: str,
        record: FreezeRecord,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        loop = loop or asyncio.get_running_loop()
        self.request = request
        self.request_id = request.request_id
        # One per attempt: an async retry keeps the request id but is a new invocation.
        self.invocation_id = new_request_id()
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
        if self.request.reply is not None:
            self.request.reply(response)
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
