"""The state of one execution environment and the waits its lifecycle is made of.

`EnvironmentBase` holds what every phase shares (the process group, the Runtime API endpoint,
the current `Sandbox`, the processes and their output) and the primitives the phases use: wait for
a sandbox condition, a process exit or a deadline (`EndWatch` and `_until` on it, `first`), freeze
and thaw, and the errors a lost attempt is answered with.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from ..attempt import Attempt
from ..config import EmulatorConfig
from ..invoke import ResponseStream, RuntimeResponse
from ..output import ProcessOutput
from ..process import ProcessGroup, describe_exit
from ..report import Journal
from ..sandbox import Sandbox
from ..server import RuntimeAPIServer

Process = asyncio.subprocess.Process
# What ended a wait: the awaited condition ("done"), the deadline ("timeout"), or a process exit.
WaitEnd = str | Process
# The lines of an init's output kept for `init_output` (its last ones).
INIT_OUTPUT_LINES = 200


class EnvironmentBase:
    """One execution environment's shared state (its lifecycle: see `environment.py`)."""

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
        # What the processes printed during the last init, to tell whether they said why it failed.
        self.init_output: deque[str] = deque(maxlen=INIT_OUTPUT_LINES)
        # The task of each attempt running in one, and who to tell as it ends.
        self._tasks: dict[asyncio.Task[None], tuple[Attempt, Callable[..., None] | None]] = {}
        # Warm attempts dispatched and not ended yet: no task runs for them meanwhile (see
        # `Environment.submit`); the watch of each and who to tell as it ends.
        self._watched: dict[Attempt, tuple[EndWatch, Callable[..., None] | None]] = {}
        # Managed Instances: invocations share the environment, and its one init.
        self._init_lock = asyncio.Lock()
        self._init_began = 0.0
        self._init_type = "on-demand"
        self._init_phase = "init"
        # SnapStart: the snapshot being taken (or taken), and whether it still awaits a restore.
        self._snapshot: asyncio.Task[RuntimeResponse | str | None] | None = None
        self._awaiting_restore = False
        self._snapshotted_at = 0.0
        # Set by start(): the loop every attempt of this environment runs on.
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def warm(self) -> bool:
        """Whether a runtime is initialized here (the next attempt is not a cold start)."""
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
        self._loop = asyncio.get_running_loop()
        await self._api.start()

    def _watch(
        self,
        predicate: Callable[[], bool],
        deadline: float,
        processes: Sequence[Process],
        on_end: Callable[[WaitEnd], None],
        on_done: Callable[[], None] | None = None,
    ) -> EndWatch:
        """Tell `on_end` what ends the wait for `predicate()`: see `EndWatch`."""
        sandbox = self._sandbox
        assert sandbox is not None
        watch = EndWatch(self._loop or asyncio.get_running_loop(), on_end, on_done)
        watch.start(sandbox, predicate, deadline, [(self._group.exit_of(p), p) for p in processes])
        return watch

    async def _until(
        self,
        predicate: Callable[[], bool],
        deadline: float,
        processes: Sequence[Process],
        on_done: Callable[[], None] | None = None,
    ) -> WaitEnd:
        """Wait for `predicate()` to hold, the exit of any of `processes`, or `deadline`
        (`EndWatch` says which wins; no task is started for it)."""
        return await self._ended(
            lambda on_end: self._watch(predicate, deadline, processes, on_end, on_done)
        )

    async def _ended(self, start: Callable[[Callable[[WaitEnd], None]], EndWatch]) -> WaitEnd:
        """What ends the wait `start(on_end)` begins, once it is told."""
        loop = self._loop or asyncio.get_running_loop()
        ended: asyncio.Future[WaitEnd] = loop.create_future()

        def on_end(outcome: WaitEnd) -> None:
            # A waiter cancelled is only told in the next round: it drops the watch then, and
            # the wait may end meanwhile.
            if not ended.done():
                ended.set_result(outcome)

        watch = start(on_end)
        try:
            return await ended
        finally:
            watch.drop()

    def _processes(self) -> list[Process]:
        return [*self._extensions, *([self._runtime] if self._runtime else [])]

    def _output(self, kind: str) -> ProcessOutput:
        """Pipes for a process whose lines are `kind` events (function or extension)."""

        def emit(lines: list[str]) -> None:
            if self._sandbox is not None:
                if self._sandbox.telemetry.in_init:
                    self.init_output.extend(lines)
                self._sandbox.telemetry.emit_lines(kind, lines)

        output = ProcessOutput(emit)
        self._outputs.append(output)
        return output

    def _drain_runtime_output(self) -> None:
        # What the runtime printed so far is passed on, its lines as telemetry `function` events.
        if self._runtime_output is not None:
            self._runtime_output.drain()

    def _stop(self) -> None:
        """Freeze: SIGSTOP the group, and hold telemetry and held answers until the thaw."""
        self._group.stop()
        self._api.hold_answers()
        if self._sandbox is not None:
            self._sandbox.telemetry.freeze()

    def _thaw(self) -> None:
        self._api.release_answers()  # there before the runtime runs again
        self._group.thaw()
        if self._sandbox is not None:
            self._sandbox.telemetry.thaw()

    def _timed_out(self, attempt: Attempt) -> RuntimeResponse:
        message = (
            f"RequestId: {attempt.request_id} Error: "
            f"Task timed out after {self._config.timeout:.2f} seconds"
        )
        return RuntimeResponse.platform_error("Sandbox.Timedout", message)

    def _exit_error(self, attempt: Attempt | None, process: WaitEnd) -> RuntimeResponse:
        assert isinstance(process, Process) and process.returncode is not None
        prefix = "Error: " if attempt is None else f"RequestId: {attempt.request_id} Error: "
        if process is not self._runtime:
            reason = describe_exit(process.returncode)
            return RuntimeResponse.platform_error("Extension.Crash", f"{prefix}{reason}")
        if process.returncode == 0:
            message = "Runtime exited without providing a reason"
        else:
            message = f"Runtime exited with error: {describe_exit(process.returncode)}"
        return RuntimeResponse.platform_error("Runtime.ExitError", prefix + message)


class EndWatch:
    """What ends one wait of the environment, told once to `on_end`: "done" when the sandbox's
    `predicate()` holds, the process when one of `exits` ends, "timeout" at the deadline.

    "done" is told at once, inside the state change that makes the predicate hold, right after
    `on_done`; an exit or the deadline a round of the event loop later, so that the condition,
    if it holds by then, still wins: a runtime that posted its init error and then exited
    failed its init, it did not crash. No task runs for it: the sandbox checks the predicate as
    its state changes, each process has one exit future for its whole life, and the deadline is
    a timer. `drop` ends the watch without a word.
    """

    __slots__ = (
        "_exits",
        "_loop",
        "_on_done",
        "_on_end",
        "_over",
        "_pending",
        "_timer",
        "_unwatch",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_end: Callable[[WaitEnd], None],
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self._loop = loop
        self._on_end = on_end
        self._on_done = on_done
        self._over = False
        self._pending: WaitEnd | None = None
        self._unwatch: Callable[[], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._exits: list[tuple[asyncio.Future[int], Callable[[object], None]]] = []

    def start(
        self,
        sandbox: Sandbox,
        predicate: Callable[[], bool],
        deadline: float,
        exits: list[tuple[asyncio.Future[int], Process]],
    ) -> None:
        """Begin watching (the predicate may hold already: then `on_end` is told now)."""
        unwatch = sandbox.watch(predicate, self._done)
        if self._over:
            return
        self._unwatch = unwatch
        delay = max(0.0, deadline - time.monotonic())
        self._timer = self._loop.call_later(delay, self._settle, "timeout")
        for exit_future, process in exits:
            callback = functools.partial(_settle_exit, self._settle, process)
            exit_future.add_done_callback(callback)
            self._exits.append((exit_future, callback))

    def drop(self) -> None:
        """Stop watching; `on_end` is not told (any more)."""
        self._over = True
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for exit_future, callback in self._exits:
            exit_future.remove_done_callback(callback)
        self._exits.clear()

    def _done(self) -> None:
        if self._pending is None and self._on_done is not None:
            self._on_done()
        self._end("done")

    def _settle(self, outcome: WaitEnd) -> None:
        if self._pending is None and not self._over:
            self._pending = outcome
            self._loop.call_soon(self._end_pending)

    def _end_pending(self) -> None:
        assert self._pending is not None
        self._end(self._pending)

    def _end(self, outcome: WaitEnd) -> None:
        if not self._over:
            self.drop()
            self._on_end(outcome)


def _settle_exit(settle: Callable[[WaitEnd], None], process: Process, _: object) -> None:
    settle(process)


def abandon_stream(attempt: Attempt, failure: RuntimeResponse) -> None:
    """End a response still streaming when the invocation failed, so its reader stops."""
    if attempt.result.done() and not attempt.result.cancelled():
        body = attempt.result.result().body
        if isinstance(body, ResponseStream):
            body.finish({"errorType": failure.error_type, "errorMessage": "invocation failed"})


async def first(target: Awaitable[None], deadline: float, processes: Sequence[Process]) -> WaitEnd:
    """Wait for `target`, the exit of any of `processes`, or `deadline`: whichever is first.

    When `target` and an exit are both ready, `target` wins: a runtime that posted its init
    error and then exited failed its init, it did not crash.
    """
    waits: dict[asyncio.Future[object], WaitEnd] = {asyncio.ensure_future(target): "done"}
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
