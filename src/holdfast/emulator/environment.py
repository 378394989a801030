"""One execution environment: a process group, its Runtime API, and the Lambda lifecycle.

Cold: start the external extensions, wait for them to register, start the runtime, wait until
the runtime and every extension have called `next` (init, 10 s by default; an overrun is retried
once within the invocation's own timeout, as Lambda's "suppressed init" does). Invoke: thaw,
dispatch, answer the caller as soon as the runtime posts, then wait until the runtime and every
INVOKE extension are back in `next` and freeze the whole group with SIGSTOP. A timeout, a crash
or a failed init resets the environment: processes killed, next invocation cold.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from .config import ACCOUNT_ID, EmulatorConfig
from .invocation import FreezeRecord, Invocation, InvokeRequest, ResponseStream, RuntimeResponse
from .process import ProcessGroup, describe_exit
from .report import Journal, Report
from .sandbox import Extension, FunctionMetadata, Sandbox
from .server import RuntimeAPIServer

INTERNAL_SHUTDOWN_WINDOW = 0.5
EXTERNAL_SHUTDOWN_WINDOW = 2.0

Process = asyncio.subprocess.Process
# What ended a wait: the awaited condition ("done"), the deadline ("timeout"), or a process exit.
Outcome = str | Process


class Environment:
    """One execution environment; see the module docstring for its lifecycle."""

    def __init__(self, env_id: int, config: EmulatorConfig, journal: Journal) -> None:
        self.id = env_id
        self._config = config
        self._journal = journal
        self._api = RuntimeAPIServer()
        self._group = ProcessGroup()
        self._sandbox: Sandbox | None = None
        self._runtime: Process | None = None
        self._extensions: list[Process] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def warm(self) -> bool:
        """Whether a runtime is initialized here (the next invocation is not a cold start)."""
        return self._sandbox is not None

    @property
    def pgid(self) -> int | None:
        """The process group of the environment's processes, while they run."""
        return self._group.pgid

    @property
    def runtime_api(self) -> str:
        """The `AWS_LAMBDA_RUNTIME_API` address of this environment."""
        return self._api.address

    async def start(self) -> None:
        """Open the environment's Runtime API endpoint (no process is started yet)."""
        await self._api.start()

    def submit(
        self,
        request: InvokeRequest,
        on_finished: Callable[[Environment, asyncio.Future[None]], None] | None = None,
    ) -> Invocation:
        """Run `request` here; the environment stays busy until `invocation.finished`.

        `on_finished(self, invocation.finished)` is called as the invocation ends, before the
        future's own callbacks run (they run one round of the event loop later).
        """
        record = FreezeRecord(self.id, request.request_id, cold=not self.warm, started_at=0.0)
        invocation = Invocation(request, function_arn=self._config.function_arn, record=record)
        # A warm environment is thawed and handed the event right away, not one round of the
        # event loop later in the task (which then only waits for the invocation to end).
        started: bool | Exception = False
        if self.warm:
            try:
                self._group.thaw()
                record.thawed_at = time.monotonic()
                invocation.arm(self._config.timeout)
                self._dispatch(invocation)
                started = True
            except Exception as exc:  # answered by the task, as any failure inside it
                started = exc
        self._task = asyncio.create_task(self._run(invocation, started, on_finished))
        return invocation

    async def close(self) -> None:
        """Shut down for good: SIGTERM and the shutdown window, then SIGKILL; close the API."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._shutdown("spindown")
        await self._api.close()

    # -- one invocation -----------------------------------------------------------------------

    async def _run(
        self,
        invocation: Invocation,
        started: bool | Exception,
        on_finished: Callable[[Environment, asyncio.Future[None]], None] | None,
    ) -> None:
        try:
            if isinstance(started, Exception):
                raise started
            if started:
                await self._complete(invocation, init_ms=None)
            else:
                await self._cold_invoke(invocation)
        except asyncio.CancelledError:
            invocation.record.outcome = "shutdown"
            invocation.respond(
                RuntimeResponse.platform_error("Sandbox.Shutdown", "the emulator is shutting down")
            )
            raise
        finally:
            if not invocation.result.done():  # a bug above must not leave a caller hanging
                invocation.respond(RuntimeResponse.platform_error("Runtime.Unknown", "emulator"))
            if not invocation.finished.done():
                invocation.finished.set_result(None)
                if on_finished is not None:
                    on_finished(self, invocation.finished)

    async def _cold_invoke(self, invocation: Invocation) -> None:
        began = time.monotonic()
        failure = await self._init(began + self._config.init_timeout, invocation)
        if failure == "timeout":
            limit = self._config.init_timeout
            self._journal.note(f"INIT_REPORT Init Duration: {limit * 1000:.2f} ms\tStatus: timeout")
            await self._shutdown("timeout")
            invocation.arm(self._config.timeout)  # the retried init runs on the invocation's clock
            failure = await self._init(invocation.deadline, invocation)
        else:
            invocation.arm(self._config.timeout)
        init_ms = (time.monotonic() - began) * 1000
        if failure is None:
            self._dispatch(invocation)
            await self._complete(invocation, init_ms=init_ms)
            return
        record = invocation.record
        record.outcome = "init_error"
        if failure == "timeout":
            failure, record.outcome = self._timed_out(invocation), "timeout"
        record.started_at = began
        self._journal.started(record)
        invocation.respond(failure)
        await self._finish(invocation, init_ms=init_ms, response=failure)
        await self._shutdown("failure")

    async def _init(self, deadline: float, invocation: Invocation) -> RuntimeResponse | str | None:
        """Start the processes and wait for init; None on success, else the failure."""
        config = self._config
        sandbox = Sandbox(self._metadata(), [os.path.basename(c[0]) for c in config.extensions])
        self._sandbox = self._api.sandbox = sandbox
        env = self._variables()
        try:
            for command in config.extensions:
                self._extensions.append(await self._group.spawn(command, env=env, cwd=config.cwd))
            registered = await self._until(
                lambda: _externals_registered(sandbox), deadline, self._extensions
            )
            if registered == "done" and sandbox.init_failure is None:
                self._runtime = await self._group.spawn(config.command, env=env, cwd=config.cwd)
                registered = await self._until(
                    lambda: sandbox.initialized or sandbox.init_failure is not None,
                    deadline,
                    self._processes(),
                )
        except OSError as exc:
            return RuntimeResponse.platform_error(
                "Runtime.InvalidEntrypoint", f"fork/exec {exc.filename}: {exc.strerror}"
            )
        if sandbox.init_failure is not None:
            return sandbox.init_failure
        if registered == "done":
            return None
        if registered == "timeout":
            return "timeout"
        return self._exit_error(invocation, registered)

    def _dispatch(self, invocation: Invocation) -> None:
        sandbox = self._sandbox
        assert sandbox is not None
        record = invocation.record
        record.started_at = time.monotonic()
        self._journal.started(record)
        sandbox.dispatch(invocation)

    async def _complete(self, invocation: Invocation, *, init_ms: float | None) -> None:
        """Wait for the dispatched invocation to end, then freeze (or reset) the environment."""
        sandbox = self._sandbox
        assert sandbox is not None
        record = invocation.record
        # The group is stopped the moment the runtime and the extensions are all back in
        # `next`; the freeze below waits until the stop shows.
        outcome = await self._until(
            lambda: sandbox.quiescent,
            invocation.deadline,
            self._processes(),
            on_done=self._group.stop,
        )
        if outcome == "done":
            await self._group.freeze()
            record.frozen_at = time.monotonic()
            record.outcome = "frozen"
            await self._finish(invocation, init_ms=init_ms, response=invocation.result.result())
            return
        failure = (
            self._timed_out(invocation)
            if outcome == "timeout"
            else self._exit_error(invocation, outcome)
        )
        record.outcome = "timeout" if outcome == "timeout" else "exit"
        _abandon_stream(invocation, failure)
        invocation.respond(failure)
        await self._finish(invocation, init_ms=init_ms, response=failure)
        await self._shutdown("timeout" if outcome == "timeout" else "failure")

    async def _finish(
        self, invocation: Invocation, *, init_ms: float | None, response: RuntimeResponse
    ) -> None:
        record = invocation.record
        ended = record.frozen_at or time.monotonic()
        post = record.post_response
        status, error_type = None, None
        if record.outcome == "timeout":
            status = "timeout"
        elif response.failed:
            status, error_type = "error", response.error_type
        self._journal.finished(
            Report(
                request_id=invocation.request_id,
                duration_ms=(ended - record.started_at) * 1000,
                memory_size_mb=self._config.memory,
                max_memory_used_mb=self._group.peak_memory_mb(),
                init_duration_ms=init_ms,
                post_response_ms=None if post is None else post * 1000,
                status=status,
                error_type=error_type,
            )
        )

    def _timed_out(self, invocation: Invocation) -> RuntimeResponse:
        message = (
            f"RequestId: {invocation.request_id} Error: "
            f"Task timed out after {self._config.timeout:.2f} seconds"
        )
        return RuntimeResponse.platform_error("Sandbox.Timedout", message)

    def _exit_error(self, invocation: Invocation, process: Outcome) -> RuntimeResponse:
        assert isinstance(process, Process) and process.returncode is not None
        prefix = f"RequestId: {invocation.request_id} Error: "
        if process is not self._runtime:
            reason = describe_exit(process.returncode)
            return RuntimeResponse.platform_error("Extension.Crash", f"{prefix}{reason}")
        if process.returncode == 0:
            message = "Runtime exited without providing a reason"
        else:
            message = f"Runtime exited with error: {describe_exit(process.returncode)}"
        return RuntimeResponse.platform_error("Runtime.ExitError", prefix + message)

    # -- shutdown and reset -------------------------------------------------------------------

    async def _shutdown(self, reason: str) -> None:
        """End the processes as Lambda does; `reason` is spindown, timeout or failure.

        With no extension the runtime is killed at once. A spindown gives the runtime a SIGTERM
        and a window (500 ms with internal extensions, 2 s with external ones); a reset kills
        the runtime at once and gives external extensions their SHUTDOWN event and window.
        """
        sandbox, runtime = self._sandbox, self._runtime
        if sandbox is not None and runtime is not None and runtime.returncode is None:
            self._group.thaw()
            window = _shutdown_window(sandbox)
            if reason == "spindown" and window:
                runtime.send_signal(signal.SIGTERM)
            else:
                runtime.kill()
            if window:
                deadline = time.monotonic() + window
                targets = sandbox.shutdown(reason, int((time.time() + window) * 1000))
                await _first(self._shutdown_acknowledged(sandbox, targets), deadline, ())
        await self._group.kill()
        self._api.sandbox = None
        self._api.drop_connections()
        self._sandbox = None
        self._runtime = None
        self._extensions = []

    async def _shutdown_acknowledged(self, sandbox: Sandbox, targets: list[Extension]) -> None:
        """The runtime has exited and the extensions took SHUTDOWN and called `next` (or exited)."""
        if self._runtime is not None:
            await self._runtime.wait()
        if not targets:
            return
        acknowledged = asyncio.ensure_future(sandbox.until(lambda: all(t.waiting for t in targets)))
        exited = asyncio.ensure_future(asyncio.gather(*(p.wait() for p in self._extensions)))
        try:
            await asyncio.wait({acknowledged, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (acknowledged, exited):
                future.cancel()
            await asyncio.gather(acknowledged, exited, return_exceptions=True)

    # -- helpers ------------------------------------------------------------------------------

    async def _until(
        self,
        predicate: Callable[[], bool],
        deadline: float,
        processes: Sequence[Process],
        on_done: Callable[[], None] | None = None,
    ) -> Outcome:
        """Wait for `predicate()` to hold, the exit of any of `processes`, or `deadline`.

        When the condition and an exit are both there by the time the wait ends, the condition
        wins: a runtime that posted its init error and then exited failed its init, it did not
        crash. No task is started: the sandbox checks the condition as its state changes, and
        each process has one exit future for its whole life. `on_done` runs the moment the
        condition holds, inside the state change that made it hold.
        """
        sandbox = self._sandbox
        assert sandbox is not None
        loop = asyncio.get_running_loop()
        wakeup: asyncio.Future[None] = loop.create_future()
        outcome: list[Outcome] = []

        def settle(value: Outcome) -> None:
            if value == "done" or not outcome:
                outcome[:] = [value]
            if not wakeup.done():
                wakeup.set_result(None)

        def done() -> None:
            if not outcome and on_done is not None:
                on_done()
            settle("done")

        unwatch = sandbox.watch(predicate, done)
        if outcome:
            return "done"
        timer = loop.call_later(max(0.0, deadline - time.monotonic()), settle, "timeout")
        exits = [(self._group.exit_of(process), process) for process in processes]
        callbacks = []
        for exit_future, process in exits:
            callback = functools.partial(_settle_exit, settle, process)
            exit_future.add_done_callback(callback)
            callbacks.append((exit_future, callback))
        try:
            await wakeup
        finally:
            unwatch()
            timer.cancel()
            for exit_future, callback in callbacks:
                exit_future.remove_done_callback(callback)
        return outcome[0]

    def _processes(self) -> list[Process]:
        return [*self._extensions, *([self._runtime] if self._runtime else [])]

    def _metadata(self) -> FunctionMetadata:
        config = self._config
        return FunctionMetadata(
            function_name=config.function_name,
            function_version="$LATEST",
            handler=config.handler or config.command[-1],
            account_id=ACCOUNT_ID,
        )

    def _variables(self) -> dict[str, str]:
        config = self._config
        task_root = os.path.abspath(config.cwd or os.getcwd())
        today = datetime.datetime.now(datetime.UTC)
        variables = dict(os.environ)
        # Left over from a Lambda-like parent, these would switch awslambdaric into other modes.
        for name in ("AWS_LAMBDA_MAX_CONCURRENCY", "_LAMBDA_TELEMETRY_LOG_FD"):
            variables.pop(name, None)
        variables.update(
            {
                "AWS_LAMBDA_RUNTIME_API": self._api.address,
                "AWS_LAMBDA_FUNCTION_NAME": config.function_name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.function_name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"{today:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_LAMBDA_LOG_FORMAT": "Text",
                "AWS_REGION": config.region,
                "AWS_DEFAULT_REGION": config.region,
                "LAMBDA_TASK_ROOT": task_root,
                "LAMBDA_RUNTIME_DIR": task_root,
                "TZ": ":UTC",
                "_HANDLER": config.handler or config.command[-1],
            }
        )
        # How Lambda learns the invoke mode is the function URL's setting; holdfast's runtime
        # reads it from its environment, so an emulated RESPONSE_STREAM URL sets it (unless the
        # caller's environment or `env` already does).
        variables.setdefault("HOLDFAST_INVOKE_MODE", config.invoke_mode)
        variables.update(config.env)
        return variables


def _settle_exit(settle: Callable[[Outcome], None], process: Process, _: object) -> None:
    settle(process)


def _externals_registered(sandbox: Sandbox) -> bool:
    registered = {e.name for e in sandbox.extensions.values() if e.external}
    return sandbox.init_failure is not None or registered >= sandbox.external_names


def _shutdown_window(sandbox: Sandbox) -> float:
    if sandbox.has_external_extensions:
        return EXTERNAL_SHUTDOWN_WINDOW
    if sandbox.has_internal_extensions:
        return INTERNAL_SHUTDOWN_WINDOW
    return 0.0


def _abandon_stream(invocation: Invocation, failure: RuntimeResponse) -> None:
    """End a response still streaming when the invocation failed, so its reader stops."""
    if invocation.result.done() and not invocation.result.cancelled():
        body = invocation.result.result().body
        if isinstance(body, ResponseStream):
            body.finish({"errorType": failure.error_type, "errorMessage": "invocation failed"})


async def _first(target: Awaitable[None], deadline: float, processes: Sequence[Process]) -> Outcome:
    """Wait for `target`, the exit of any of `processes`, or `deadline`: whichever is first.

    When `target` and an exit are both ready, `target` wins: a runtime that posted its init
    error and then exited failed its init, it did not crash.
    """
    waits: dict[asyncio.Future[object], Outcome] = {asyncio.ensure_future(target): "done"}
    for process in processes:
        waits[asyncio.ensure_future(process.wait())] = process
    try:
        timeout = max(0.0, deadline - time.monotonic())
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in waits:
            future.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    if not done:
        return "timeout"
    outcomes = [waits[future] for future in done]
    return "done" if "done" in outcomes else outcomes[0]
