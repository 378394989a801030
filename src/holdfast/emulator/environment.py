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
import datetime
import functools
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from . import records
from .config import ACCOUNT_ID, EmulatorConfig
from .invocation import FreezeRecord, Invocation, InvokeRequest, ResponseStream, RuntimeResponse
from .output import ProcessOutput
from .process import ProcessGroup, describe_exit
from .report import Journal, Report
from .sandbox import Extension, FunctionMetadata, Sandbox
from .server import RuntimeAPIServer
from .telemetry import TelemetryHub

INTERNAL_SHUTDOWN_WINDOW = 0.5
EXTERNAL_SHUTDOWN_WINDOW = 2.0
# SnapStart: the restore and the after-restore hooks must end within this.
RESTORE_LIMIT = 10.0
# AWS documents no figure for Managed Instances; the emulator gives the runtime this long.
MANAGED_INSTANCES_SHUTDOWN_WINDOW = 2.0

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
        self._outputs: list[ProcessOutput] = []
        self._runtime_output: ProcessOutput | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Managed Instances: invocations share the environment, and its one init.
        self._init_lock = asyncio.Lock()
        self._init_began = 0.0
        self._init_type = "on-demand"
        self._init_phase = "init"
        # SnapStart: the snapshot being taken (or taken), and whether it still awaits a restore.
        self._snapshot: asyncio.Task[RuntimeResponse | str | None] | None = None
        self._awaiting_restore = False
        self._snapshotted_at = 0.0

    @property
    def warm(self) -> bool:
        """Whether a runtime is initialized here (the next invocation is not a cold start)."""
        return self._sandbox is not None and not self._awaiting_restore

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
        if self.warm and self._config.max_concurrency is None:
            try:
                self._thaw()
                record.thawed_at = time.monotonic()
                invocation.arm(self._config.timeout)
                self._dispatch(invocation)
                started = True
            except Exception as exc:  # answered by the task, as any failure inside it
                started = exc
        task = asyncio.create_task(self._run(invocation, started, on_finished))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return invocation

    def prepare(self) -> None:
        """SnapStart: init and take the snapshot now, as publishing a version does; the first
        invocation then restores it (and finds the wall clock moved on meanwhile)."""
        if self._config.snap_start and self._snapshot is None and self._sandbox is None:
            self._snapshot = asyncio.create_task(self._take_snapshot(None))

    async def close(self) -> None:
        """Shut down for good: SIGTERM and the shutdown window, then SIGKILL; close the API."""
        if self._snapshot is not None and not self._snapshot.done():
            self._snapshot.cancel()
            await asyncio.gather(self._snapshot, return_exceptions=True)
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
            if self._config.max_concurrency is not None:
                await self._concurrent_invoke(invocation)
            elif started:
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
        if self._config.snap_start:
            await self._restore_invoke(invocation)
            return
        began = time.monotonic()
        failure = await self._init(began + self._config.init_timeout, invocation)
        if failure == "timeout":
            limit = self._config.init_timeout
            self._journal.note(f"INIT_REPORT Init Duration: {limit * 1000:.2f} ms\tStatus: timeout")
            self._init_ended("timeout", "Sandbox.Timedout")
            await self._shutdown("timeout")
            invocation.arm(self._config.timeout)  # the retried init runs on the invocation's clock
            self._init_phase = "invoke"  # a suppressed init, inside the invocation
            failure = await self._init(invocation.deadline, invocation)
        else:
            invocation.arm(self._config.timeout)
        init_ms = (time.monotonic() - began) * 1000
        if failure is None:
            self._dispatch(invocation)
            await self._complete(invocation, init_ms=init_ms)
            return
        await self._fail_init(invocation, failure, began=began, init_ms=init_ms)

    # -- SnapStart ----------------------------------------------------------------------------

    async def _take_snapshot(self, invocation: Invocation | None) -> RuntimeResponse | str | None:
        """Init up to the runtime's `restore/next` (the before-snapshot hooks have run), then
        freeze: the frozen group is the snapshot. None on success, else the init's failure."""
        self._awaiting_restore = True
        began = time.monotonic()
        failure = await self._init(began + self._config.init_timeout, invocation)
        if failure is None:
            self._stop()
            await self._group.freeze()
            self._snapshotted_at = time.monotonic()
        return failure

    async def _restore_invoke(self, invocation: Invocation) -> None:
        """A SnapStart cold start: the snapshot (taken now if it was not yet), the restore, the
        invocation. Init is not part of the invocation; the restore is (`Restore Duration`)."""
        snapshot, self._snapshot = self._snapshot, None
        began = time.monotonic()
        failure = await (snapshot if snapshot is not None else self._take_snapshot(invocation))
        if failure is not None:
            invocation.arm(self._config.timeout)
            init_ms = (time.monotonic() - began) * 1000
            await self._fail_init(invocation, failure, began=began, init_ms=init_ms)
            return
        restore_failure = await self._restore(invocation)
        invocation.arm(self._config.timeout)
        if restore_failure is not None:
            await self._fail_start(invocation, restore_failure, "restore_error", began, None)
            return
        self._awaiting_restore = False
        self._dispatch(invocation)
        await self._complete(invocation, init_ms=None)

    async def _restore(self, invocation: Invocation) -> RuntimeResponse | None:
        """Thaw the snapshot no earlier than `snapshot_age` after it was taken, answer the
        runtime's `restore/next` and wait (10 s at most) for the after-restore hooks to end
        in `next`. None on success, else the failure."""
        sandbox = self._sandbox
        assert sandbox is not None
        # The group stays stopped meanwhile: its wall clock jumps by at least this much.
        await asyncio.sleep(self._snapshotted_at + self._config.snapshot_age - time.monotonic())
        began = time.monotonic()
        self._thaw()
        hub = sandbox.telemetry
        hub.emit(
            "platform.restoreStart",
            {"functionName": self._config.function_name, "functionVersion": "$LATEST"},
        )
        sandbox.restore()
        outcome = await self._until(
            lambda: sandbox.initialized or sandbox.restore_failure is not None,
            began + RESTORE_LIMIT,
            self._processes(),
        )
        invocation.restore_ms = (time.monotonic() - began) * 1000
        failure: RuntimeResponse | None = None
        status = "success"
        if sandbox.restore_failure is not None:
            failure, status = sandbox.restore_failure, "error"
        elif outcome == "timeout":
            message = (
                f"RequestId: {invocation.request_id} Error: "
                f"restore timed out after {RESTORE_LIMIT:.2f} seconds"
            )
            failure, status = RuntimeResponse.platform_error("Sandbox.Timedout", message), "timeout"
        elif outcome != "done":
            failure, status = self._exit_error(invocation, outcome), "failure"
        record: dict[str, Any] = {"status": status}
        if failure is not None:
            record["errorType"] = failure.error_type
            hub.emit("platform.restoreRuntimeDone", dict(record))
        record["metrics"] = {"durationMs": round(invocation.restore_ms, 3)}
        hub.emit("platform.restoreReport", record)
        return failure

    def _restored(self) -> None:
        """The runtime called `next` after its after-restore hooks."""
        self._drain_runtime_output()
        if self._sandbox is not None:
            self._sandbox.telemetry.emit("platform.restoreRuntimeDone", {"status": "success"})

    # -- init ---------------------------------------------------------------------------------

    async def _init(
        self, deadline: float, invocation: Invocation | None
    ) -> RuntimeResponse | str | None:
        """Start the processes and wait for init; None on success, else the failure."""
        config = self._config
        hub = TelemetryHub()
        sandbox = Sandbox(
            self._metadata(),
            [os.path.basename(c[0]) for c in config.extensions],
            max_concurrency=config.max_concurrency,
            telemetry=hub,
            snap_start=config.snap_start,
        )
        sandbox.on_runtime_ready = self._runtime_ready
        sandbox.on_runtime_done = self._runtime_done
        sandbox.on_restored = self._restored

        def ready() -> bool:
            return sandbox.snapshot_ready if config.snap_start else sandbox.initialized

        self._sandbox = self._api.sandbox = sandbox
        env = self._variables()
        self._init_began = time.time()
        self._init_type = env["AWS_LAMBDA_INITIALIZATION_TYPE"]
        hub.emit(
            "platform.initStart",
            {
                "initializationType": self._init_type,
                "phase": self._init_phase,
                "functionName": config.function_name,
                "functionVersion": "$LATEST",
            },
        )
        try:
            for command in config.extensions:
                output = self._output("extension")
                process = await self._group.spawn(command, env=env, cwd=config.cwd, output=output)
                self._extensions.append(process)
            registered = await self._until(
                lambda: _externals_registered(sandbox), deadline, self._extensions
            )
            if registered == "done" and sandbox.init_failure is None:
                self._runtime_output = self._output("function")
                self._runtime = await self._group.spawn(
                    config.command, env=env, cwd=config.cwd, output=self._runtime_output
                )
                registered = await self._until(
                    lambda: ready() or sandbox.init_failure is not None,
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
            self._init_ended("success", None)
            return None
        if registered == "timeout":
            return "timeout"
        return self._exit_error(invocation, registered)

    def _dispatch(self, invocation: Invocation) -> None:
        sandbox = self._sandbox
        assert sandbox is not None
        record = invocation.record
        record.started_at = time.monotonic()
        invocation.started_wall = time.time()
        self._journal.started(record)
        sandbox.telemetry.emit(
            "platform.start",
            {
                "requestId": invocation.request_id,
                "version": "$LATEST",
                "tracing": records.tracing(invocation),
            },
        )
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
            on_done=self._stop,
        )
        if outcome == "done":
            await self._group.freeze()
            record.frozen_at = time.monotonic()
            record.outcome = "frozen"
            await self._finish(invocation, init_ms=init_ms, response=invocation.result.result())
            return
        await self._answer_lost(invocation, outcome, init_ms)
        await self._shutdown("timeout" if outcome == "timeout" else "failure")

    async def _answer_lost(
        self, invocation: Invocation, outcome: Outcome, init_ms: float | None
    ) -> None:
        """Answer `invocation` with its timeout or the runtime's exit (`outcome`)."""
        timeout = outcome == "timeout"
        failure = self._timed_out(invocation) if timeout else self._exit_error(invocation, outcome)
        invocation.record.outcome = "timeout" if timeout else "exit"
        self._runtime_failed(invocation, failure, timeout=timeout)
        _abandon_stream(invocation, failure)
        invocation.respond(failure)
        await self._finish(invocation, init_ms=init_ms, response=failure)

    async def _concurrent_invoke(self, invocation: Invocation) -> None:
        """One invocation among many in a Managed Instances environment: never frozen, and a
        timeout fails only this invocation (its code goes on running; a late result gets 410)."""
        init_ms = await self._ensure_initialized(invocation)
        if init_ms is None:
            return
        sandbox = self._sandbox
        assert sandbox is not None
        # Dispatched inside the state change that frees a poller: invocations waiting for the
        # same poller must not all see it idle.
        outcome = await self._until(
            lambda: sandbox.idle_pollers > 0,
            invocation.deadline,
            self._processes(),
            on_done=lambda: self._dispatch(invocation),
        )
        if outcome == "done":
            outcome = await self._until(
                lambda: invocation.runtime_finished, invocation.deadline, self._processes()
            )
        record = invocation.record
        if outcome == "done":
            record.outcome = "done"
            response = await invocation.result
            await self._finish(invocation, init_ms=init_ms or None, response=response)
            return
        if not record.started_at:
            record.started_at = time.monotonic()
            self._journal.started(record)
        sandbox.expire(invocation)
        await self._answer_lost(invocation, outcome, init_ms or None)
        if outcome != "timeout":  # the runtime process is gone: so is the environment
            await self._shutdown("failure")

    async def _ensure_initialized(self, invocation: Invocation) -> float | None:
        """Init once for every invocation that arrives meanwhile; the init's duration for the
        invocation that ran it (0.0 for the others), None when it failed (and was answered)."""
        async with self._init_lock:
            if self.warm:
                invocation.arm(self._config.timeout)
                return 0.0
            began = time.monotonic()
            failure = await self._init(began + self._config.init_timeout, invocation)
            init_ms = (time.monotonic() - began) * 1000
            invocation.arm(self._config.timeout)
            if failure is None:
                return init_ms
            await self._fail_init(invocation, failure, began=began, init_ms=init_ms)
            return None

    async def _fail_init(
        self,
        invocation: Invocation,
        failure: RuntimeResponse | str,
        *,
        began: float,
        init_ms: float,
    ) -> None:
        """Answer `invocation` with the init's failure ("timeout" or the error), then reset."""
        if isinstance(failure, str):
            response, outcome = self._timed_out(invocation), "timeout"
        else:
            response, outcome = failure, "init_error"
        self._init_ended("timeout" if isinstance(failure, str) else "error", response.error_type)
        await self._fail_start(invocation, response, outcome, began, init_ms)

    def _drain_runtime_output(self) -> None:
        # What the runtime printed so far is passed on, its lines as telemetry `function` events.
        if self._runtime_output is not None:
            self._runtime_output.drain()

    async def _fail_start(
        self,
        invocation: Invocation,
        response: RuntimeResponse,
        outcome: str,
        began: float,
        init_ms: float | None,
    ) -> None:
        """Answer `invocation` with a failure of the environment's start (init or restore),
        then reset."""
        record = invocation.record
        record.outcome = outcome
        record.started_at = began
        self._journal.started(record)
        invocation.respond(response)
        await self._finish(invocation, init_ms=init_ms, response=response)
        await self._shutdown("failure")

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
        report = Report(
            request_id=invocation.request_id,
            duration_ms=(ended - record.started_at) * 1000,
            memory_size_mb=self._config.memory,
            max_memory_used_mb=self._group.peak_memory_mb(),
            init_duration_ms=init_ms,
            restore_duration_ms=invocation.restore_ms,
            post_response_ms=None if post is None else post * 1000,
            status=status,
            error_type=error_type,
        )
        self._journal.finished(report)
        if self._sandbox is not None:
            self._sandbox.telemetry.emit("platform.report", records.report(invocation, report))

    def _timed_out(self, invocation: Invocation) -> RuntimeResponse:
        message = (
            f"RequestId: {invocation.request_id} Error: "
            f"Task timed out after {self._config.timeout:.2f} seconds"
        )
        return RuntimeResponse.platform_error("Sandbox.Timedout", message)

    def _exit_error(self, invocation: Invocation | None, process: Outcome) -> RuntimeResponse:
        assert isinstance(process, Process) and process.returncode is not None
        prefix = "Error: " if invocation is None else f"RequestId: {invocation.request_id} Error: "
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
            self._thaw()
            window = _shutdown_window(sandbox)
            if sandbox.concurrent:
                # Managed Instances: the runtime always gets SIGTERM and time to finish.
                window = max(window, MANAGED_INSTANCES_SHUTDOWN_WINDOW)
            if reason == "spindown" and window:
                runtime.send_signal(signal.SIGTERM)
            else:
                runtime.kill()
            if window:
                deadline = time.monotonic() + window
                deadline_ms = int((time.time() + window) * 1000)
                # Telemetry still buffered (the last invocation's report) reaches the
                # subscribers before SHUTDOWN does, inside the same window.
                await _first(sandbox.telemetry.flush(), deadline, ())
                targets = sandbox.shutdown(reason, deadline_ms)
                await _first(self._shutdown_acknowledged(sandbox, targets), deadline, ())
        elif sandbox is not None and sandbox.has_external_extensions:
            # The runtime is gone already; the extensions still get their telemetry.
            self._thaw()
            await _first(sandbox.telemetry.flush(), time.monotonic() + EXTERNAL_SHUTDOWN_WINDOW, ())
        await self._group.kill()
        for output in self._outputs:
            output.close()
        self._outputs = []
        self._runtime_output = None
        if sandbox is not None:
            await sandbox.telemetry.close()
        self._api.sandbox = None
        self._api.drop_connections()
        self._sandbox = None
        self._runtime = None
        self._extensions = []
        self._init_phase = "init"
        self._awaiting_restore = False

    async def _shutdown_acknowledged(self, sandbox: Sandbox, targets: list[Extension]) -> None:
        """The runtime has exited and the extensions took SHUTDOWN and called `next` (or exited)."""
        if self._runtime is not None:
            await self._runtime.wait()
        self._drain_runtime_output()
        # What the runtime left in the buffers reaches the subscribers inside the window.
        await sandbox.telemetry.flush()
        if not targets:
            return
        acknowledged: asyncio.Future[object] = asyncio.ensure_future(
            sandbox.until(lambda: all(t.waiting for t in targets))
        )
        exited: asyncio.Future[object] = asyncio.ensure_future(
            asyncio.gather(*(p.wait() for p in self._extensions))
        )
        try:
            await asyncio.wait({acknowledged, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (acknowledged, exited):
                future.cancel()
            await asyncio.gather(acknowledged, exited, return_exceptions=True)

    # -- telemetry ----------------------------------------------------------------------------

    def _output(self, kind: str) -> ProcessOutput:
        """Pipes for a process whose lines are `kind` events (function or extension)."""

        def emit(lines: list[str]) -> None:
            if self._sandbox is not None:
                self._sandbox.telemetry.emit_lines(kind, lines)

        output = ProcessOutput(emit)
        self._outputs.append(output)
        return output

    def _runtime_ready(self) -> None:
        """The runtime asked for its first event: its part of init is done."""
        sandbox = self._sandbox
        assert sandbox is not None
        self._drain_runtime_output()
        record = {
            "initializationType": self._init_type,
            "phase": self._init_phase,
            "status": "success",
        }
        sandbox.telemetry.emit("platform.initRuntimeDone", record)

    def _init_ended(self, status: str, error_type: str | None) -> None:
        """`platform.initReport` (and, on failure, `platform.initRuntimeDone`) for this init."""
        sandbox = self._sandbox
        if sandbox is None:
            return
        self._drain_runtime_output()
        hub = sandbox.telemetry
        record: dict[str, Any] = {
            "initializationType": self._init_type,
            "phase": self._init_phase,
            "status": status,
        }
        if error_type is not None:
            record["errorType"] = error_type
        if status != "success":
            hub.emit("platform.initRuntimeDone", dict(record))
        ended = time.time()
        record["metrics"] = {"durationMs": round((ended - self._init_began) * 1000, 3)}
        hub.emit("platform.initReport", record)
        hub.init_done()

    def _runtime_done(self, invocation: Invocation) -> None:
        """The runtime is done with `invocation` (it called `next`, or, when concurrent, it
        finished posting its result): `platform.runtimeDone`, after the lines it printed."""
        if invocation.runtime_finished or self._sandbox is None:
            return
        invocation.runtime_finished = True
        self._drain_runtime_output()
        result = invocation.result.result() if invocation.result.done() else None
        failed = result is not None and result.failed
        record = records.runtime_done(invocation, "error" if failed else "success")
        if failed and result is not None:
            record["errorType"] = result.error_type or "Runtime.Unknown"
        self._sandbox.telemetry.emit("platform.runtimeDone", record)

    def _runtime_failed(
        self, invocation: Invocation, failure: RuntimeResponse, *, timeout: bool
    ) -> None:
        """`platform.runtimeDone` for an invocation the runtime never finished."""
        if invocation.runtime_finished or self._sandbox is None or invocation.started_wall is None:
            return  # done already, or never handed to the runtime
        invocation.runtime_finished = True
        self._drain_runtime_output()
        record = records.runtime_done(invocation, "timeout" if timeout else "failure")
        record["errorType"] = failure.error_type or "Runtime.Unknown"
        self._sandbox.telemetry.emit("platform.runtimeDone", record)

    def _stop(self) -> None:
        """Freeze: SIGSTOP the group, and hold telemetry until the thaw."""
        self._group.stop()
        if self._sandbox is not None:
            self._sandbox.telemetry.freeze()

    def _thaw(self) -> None:
        self._group.thaw()
        if self._sandbox is not None:
            self._sandbox.telemetry.thaw()

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
        for name in (
            "AWS_LAMBDA_MAX_CONCURRENCY",
            "_LAMBDA_TELEMETRY_LOG_FD",
            "_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET",
        ):
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
        if config.max_concurrency is not None:
            variables["AWS_LAMBDA_MAX_CONCURRENCY"] = str(config.max_concurrency)
            variables["AWS_LAMBDA_INITIALIZATION_TYPE"] = "lambda-managed-instances"
        if config.snap_start:
            variables["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
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
