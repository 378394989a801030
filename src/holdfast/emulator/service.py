"""The emulated function as a whole, and its programmatic API.

async with Emulator(command=["python", "-m", "awslambdaric", "app.handler"]) as emu:
    result = await emu.invoke({"hello": "world"})
    await emu.wait_idle()
    record = emu.freeze_log[-1]   # response_sent_at <= frozen_at

with ThreadedEmulator(command=[...], timeout=3) as emu:   # from synchronous code
    emu.invoke({"hello": "world"})
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from .attempt import FreezeRecord
from .config import EmulatorConfig
from .environment import Environment
from .front import Front
from .invoke import FUNCTION_ERROR_UNHANDLED, InvokeRequest, InvokeResult, RuntimeResponse
from .pool import Pool
from .report import Journal, Observer, Report

T = TypeVar("T")

# The name an extension's telemetry listener binds and subscribes with on Lambda, where
# /etc/hosts maps it to the environment itself.
SANDBOX_HOST = "sandbox.localdomain"
SANDBOX_HOST_HINT = (
    f"note: {SANDBOX_HOST} does not resolve on this machine: an extension that listens on it "
    "(as AWS's samples do outside AWS SAM's local mode) cannot start. Add `127.0.0.1 "
    "sandbox.localdomain sandbox` to /etc/hosts, or run it in SAM's local mode (--env "
    "AWS_SAM_LOCAL=true: it listens on 0.0.0.0, which the emulator accepts as a destination)."
)


async def resolves(hostname: str) -> bool:
    """Whether `hostname` resolves here (within a second: a slow resolver counts as no)."""
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.getaddrinfo(hostname, None), 1.0)
    except (OSError, TimeoutError):
        return False
    return True


class Emulator:
    """A local Lambda function: a pool of environments behind the front listener.

    Options are the fields of `EmulatorConfig` (`timeout`, `concurrency`, `event_format`, ...);
    the port defaults to 0 here (a free port; see `url`). `log` receives the START/END/REPORT
    lines and platform notes (default: stdout); `observer` is told of each invocation as it
    starts and ends (see `report.Observer`).
    """

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        config: EmulatorConfig | None = None,
        log: Callable[[str], None] | None = None,
        observer: Observer | None = None,
        **options: Any,
    ) -> None:
        if config is None:
            if command is None:
                raise TypeError("Emulator needs a command (or a config)")
            config = EmulatorConfig(command=list(command), **options)
        elif command is not None or options:
            raise TypeError("pass either a config or a command and options, not both")
        self.config = config
        self.journal = Journal(log, observer, keep=config.keep_records)
        self._pool = Pool(config, self.journal)
        self._front = Front(config, self)
        self._background: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """Base URL of the front listener, e.g. `http://127.0.0.1:9000`."""
        return f"http://{self.config.host}:{self._front.port}"

    @property
    def invoke_url(self) -> str:
        """The RIE-style Invoke API URL of the function."""
        return f"{self.url}/2015-03-31/functions/{self.config.function_name}/invocations"

    @property
    def freeze_log(self) -> list[FreezeRecord]:
        """One `FreezeRecord` per invocation dispatched, in dispatch order (the last
        `config.keep_records`)."""
        return list(self.journal.freeze_log)

    @property
    def reports(self) -> list[Report]:
        """One `Report` per finished invocation, in completion order (the last
        `config.keep_records`)."""
        return list(self.journal.reports)

    @property
    def environments(self) -> list[Environment]:
        """The execution environments created so far."""
        return self._pool.environments

    async def start(self) -> None:
        """Start listening (environments start on demand, with the first invocations; with
        SnapStart the first one takes its snapshot right away)."""
        await self._front.start()
        if self.config.extensions and not await resolves(SANDBOX_HOST):
            self.journal.note(SANDBOX_HOST_HINT)
        await self._pool.prepare()

    async def initialize(self) -> RuntimeResponse | None:
        """Run the function's init now and wait for it, as provisioned concurrency does (with
        SnapStart: the snapshot): None once an environment is initialized, frozen, waiting for
        the first invocation, which then pays no init. Else the init's failure, as the runtime
        posted it (`Sandbox.Timedout` for an overrun, `Runtime.ExitError` for an exit); the
        environment is reset and the next invocation retries the init, as on Lambda.
        `environments[0].init_output` holds the lines the processes printed meanwhile."""
        return await self._pool.initialize()

    async def close(self) -> None:
        """Stop listening, then shut every environment down with its shutdown window."""
        await self._front.close()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._pool.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def invoke(
        self,
        event: Any = None,
        *,
        payload: bytes | None = None,
        client_context: dict[str, Any] | None = None,
        cognito_identity: dict[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> InvokeResult:
        """Invoke synchronously; returns as soon as the runtime posts its response.

        `event` is JSON-encoded unless `payload` (raw bytes) is given; `tenant_id` reaches the
        runtime as `Lambda-Runtime-Aws-Tenant-Id`. The environment may still be running
        after-response work when this returns; see `wait_idle`. Unlike the Invoke API over HTTP
        with `throttle` (429 `TooManyRequestsException` when every environment is busy and no
        other may start), this waits for an environment: a test's invocations never race.
        """
        request = _request(event, payload, client_context, cognito_identity, tenant_id)
        response = await (await self.call(request, queue=True)).buffered()
        assert isinstance(response.body, bytes)
        return InvokeResult(
            request_id=request.request_id,
            payload=response.body,
            function_error=FUNCTION_ERROR_UNHANDLED if response.is_error else None,
            content_type=response.content_type,
        )

    def invoke_async(self, event: Any = None, *, payload: bytes | None = None) -> str:
        """Invoke asynchronously (InvocationType Event); returns the request id.

        A failed attempt is retried after each of `config.async_retry_delays`, keeping the
        request id, as Lambda retries async invokes twice.
        """
        request = _request(event, payload, None, None, None)
        self.call_async(request)
        return request.request_id

    async def wait_idle(self) -> None:
        """Return once every invocation so far, async retries included, has ended."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._pool.wait_idle()

    # -- the Dispatcher the front uses -------------------------------------------------------

    async def call(self, request: InvokeRequest, *, queue: bool = False) -> RuntimeResponse:
        """Run `request`; the response (possibly a stream) as soon as the runtime posts it.

        With `config.throttle`, raises `TooManyRequests` when every environment is busy and no
        other may start, unless `queue` (an async invoke, which Lambda queues) says to wait.
        """
        attempt = await self._pool.submit(request, queue=queue)
        # A caller giving up must not cancel the invocation itself: Lambda would not.
        return await attempt.response()

    def call_async(self, request: InvokeRequest) -> None:
        """Run `request` in the background with async-invoke retries."""
        task = asyncio.create_task(self._call_with_retries(request))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _call_with_retries(self, request: InvokeRequest) -> None:
        delays = list(self.config.async_retry_delays)
        for attempt in range(len(delays) + 1):
            response = await (await self.call(request, queue=True)).buffered()
            if not response.is_error:
                return
            if attempt == len(delays):
                self.journal.note(f"async invoke {request.request_id} failed; no retries left")
                return
            self.journal.note(
                f"async invoke {request.request_id} failed ({response.error_type}); "
                f"retry {attempt + 1} of {len(delays)} in {delays[attempt]:g}s"
            )
            await asyncio.sleep(delays[attempt])


def _request(
    event: Any,
    payload: bytes | None,
    client_context: dict[str, Any] | None,
    cognito_identity: dict[str, Any] | None,
    tenant_id: str | None,
) -> InvokeRequest:
    return InvokeRequest(
        payload if payload is not None else json.dumps({} if event is None else event).encode(),
        client_context=None if client_context is None else json.dumps(client_context),
        cognito_identity=None if cognito_identity is None else json.dumps(cognito_identity),
        tenant_id=tenant_id,
    )


class ThreadedEmulator:
    """An `Emulator` on its own event loop in a background thread, for synchronous code.

    Takes the same arguments as `Emulator`; use it as a context manager (e.g. in a pytest
    fixture). Methods block until the emulator's loop has done the work.
    """

    def __init__(self, command: Sequence[str] | None = None, **kwargs: Any) -> None:
        self.emulator = Emulator(command, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """Base URL of the front listener."""
        return self.emulator.url

    @property
    def invoke_url(self) -> str:
        """The RIE-style Invoke API URL."""
        return self.emulator.invoke_url

    @property
    def freeze_log(self) -> list[FreezeRecord]:
        """See `Emulator.freeze_log`."""
        return self.emulator.freeze_log

    @property
    def reports(self) -> list[Report]:
        """See `Emulator.reports`."""
        return self.emulator.reports

    @property
    def environments(self) -> list[Environment]:
        """See `Emulator.environments`."""
        return self.emulator.environments

    def start(self) -> None:
        """Start the loop thread and the emulator."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="holdfast-emulator", daemon=True
        )
        self._thread.start()
        self.run(self.emulator.start())

    def close(self) -> None:
        """Shut the emulator down and stop the thread."""
        if self._loop is None or self._thread is None:
            return
        try:
            self.run(self.emulator.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._loop = self._thread = None

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coroutine` on the emulator's loop and wait for its result."""
        return self.submit(coroutine).result(timeout)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coroutine` on the emulator's loop; a future for its result."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def invoke(self, event: Any = None, **kwargs: Any) -> InvokeResult:
        """See `Emulator.invoke`."""
        return self.run(self.emulator.invoke(event, **kwargs))

    def invoke_async(self, event: Any = None, *, payload: bytes | None = None) -> str:
        """See `Emulator.invoke_async`."""

        async def schedule() -> str:
            return self.emulator.invoke_async(event, payload=payload)

        return self.run(schedule())

    def wait_idle(self, timeout: float | None = None) -> None:
        """See `Emulator.wait_idle`."""
        self.run(self.emulator.wait_idle(), timeout)
