"""One execution environment: a process group, its Runtime API, and the Lambda lifecycle.

Cold: start the external extensions, wait for them to register, start the runtime, wait until
the runtime and every extension have called `next` (init, 10 s by default; an overrun is retried
once within the invocation's own timeout, as Lambda's "suppressed init" does). Invoke: thaw,
dispatch, answer the caller as soon as the runtime posts, then wait until the runtime and every
INVOKE extension are back in `next` and freeze the whole group with SIGSTOP. A timeout, a crash
or a failed init resets the environment: processes killed, next invocation cold. `initialize`
runs the init before any invocation (`holdfast emulate` does, to check that the function starts):
the environment then waits frozen, and its first invocation is warm.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable

from ..attempt import Attempt, FreezeRecord
from ..invoke import InvokeRequest, RuntimeResponse
from .base import WaitEnd
from .managed_instances import ManagedInstances
from .snapstart import SnapStart


class Environment(SnapStart, ManagedInstances):
    """One execution environment; see the module docstring for its lifecycle."""

    def submit(
        self,
        request: InvokeRequest,
        on_finished: Callable[[Environment, asyncio.Future[None]], None] | None = None,
    ) -> Attempt:
        """Run `request` here; the environment stays busy until `attempt.finished`.

        `on_finished(self, attempt.finished)` is called as the invocation ends, before the
        future's own callbacks run (they run one round of the event loop later).
        """
        record = FreezeRecord(self.id, request.request_id, cold=not self.warm, started_at=0.0)
        loop = self._loop or asyncio.get_running_loop()
        attempt = Attempt(request, function_arn=self._config.function_arn, record=record, loop=loop)
        if self._config.max_concurrency is not None:
            work = functools.partial(self._concurrent_invoke, attempt)
            self._run_in_task(attempt, work, on_finished)
        elif not self.warm:
            self._run_in_task(attempt, functools.partial(self._cold_invoke, attempt), on_finished)
        else:
            # A warm environment is handed the event and thawed right away, and no task runs
            # for the attempt until it ends (the sandbox, a timer and the exits tell when): the
            # freeze then runs in one. A task started now would only wait, a round of the event
            # loop of its own.
            try:
                attempt.arm(self._config.timeout)
                self._dispatch(attempt, thaw=True)
            except Exception as exc:  # answered by the task, as any failure inside it
                self._run_in_task(attempt, functools.partial(_raise, exc), on_finished)
                return attempt
            ended = functools.partial(self._warm_attempt_ended, attempt, on_finished)
            self._watched[attempt] = (self._watch_completion(attempt, ended), on_finished)
        return attempt

    def _warm_attempt_ended(
        self,
        attempt: Attempt,
        on_finished: Callable[[Environment, asyncio.Future[None]], None] | None,
        outcome: WaitEnd,
    ) -> None:
        self._watched.pop(attempt, None)
        work = functools.partial(self._completed, attempt, outcome, init_ms=None)
        self._run_in_task(attempt, work, on_finished)

    def _run_in_task(
        self,
        attempt: Attempt,
        work: Callable[[], Awaitable[None]],
        on_finished: Callable[[Environment, asyncio.Future[None]], None] | None,
    ) -> None:
        loop = self._loop or asyncio.get_running_loop()
        # The task takes itself out of `_tasks` as it ends (a done callback would cost a round
        # of the event loop per invocation).
        task = loop.create_task(self._run(attempt, work, on_finished))
        self._tasks[task] = (attempt, on_finished)

    async def initialize(self) -> RuntimeResponse | None:
        """Init now, before any invocation, as provisioned concurrency (or publishing a
        SnapStart version) does; None once done: the environment waits frozen, and its first
        invocation pays no init (with SnapStart, it restores the snapshot). Else the init's
        failure (an overrun is `Sandbox.Timedout`), and the environment is reset: its next
        invocation starts cold. `init_output` holds what the processes printed meanwhile."""
        if self._config.snap_start:
            self.prepare()
            snapshot = self._snapshot
            if snapshot is None:  # an invocation took the snapshot already, and answers for it
                return None
            failure = await asyncio.shield(snapshot)
            if failure is not None and self._snapshot is snapshot:
                self._snapshot = None  # no invocation will: the reset is done here
                await self._reset_after_init(failure)
        else:
            async with self._init_lock:
                if self.warm:
                    return None
                failure = await self._init(time.monotonic() + self._config.init_timeout, None)
                if failure is not None:
                    await self._reset_after_init(failure)
                elif self._config.max_concurrency is None:  # Managed Instances never freeze
                    self._stop()
                    await self._group.freeze()
        if failure is None:
            return None
        if isinstance(failure, RuntimeResponse):
            return failure
        message = f"Error: init did not finish within {self._config.init_timeout:.2f} seconds"
        return RuntimeResponse.platform_error("Sandbox.Timedout", message)

    async def close(self) -> None:
        """Shut down for good: SIGTERM and the shutdown window, then SIGKILL; close the API."""
        if self._snapshot is not None and not self._snapshot.done():
            self._snapshot.cancel()
            await asyncio.gather(self._snapshot, return_exceptions=True)
        for attempt, (watch, on_finished) in list(self._watched.items()):
            watch.drop()
            self._shut_out(attempt)
            self._end(attempt, on_finished)
        self._watched.clear()
        tasks = {task: ended for task, ended in self._tasks.items() if not task.done()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for attempt, on_finished in tasks.values():  # a task cancelled before it began
            if not attempt.finished.done():
                self._shut_out(attempt)
                self._end(attempt, on_finished)
        await self._shutdown("spindown")
        await self._api.close()

    async def _run(
        self,
        attempt: Attempt,
        work: Callable[[], Awaitable[None]],
        on_finished: Callable[[Environment, asyncio.Future[None]], None] | None,
    ) -> None:
        try:
            await work()
        except asyncio.CancelledError:
            self._shut_out(attempt)
            raise
        finally:
            task = asyncio.current_task(attempt.result.get_loop())
            if task is not None:
                self._tasks.pop(task, None)
            self._end(attempt, on_finished)

    def _shut_out(self, attempt: Attempt) -> None:
        """The emulator stops mid-attempt: the caller hears so."""
        attempt.record.outcome = "shutdown"
        attempt.respond(
            RuntimeResponse.platform_error("Sandbox.Shutdown", "the emulator is shutting down")
        )

    def _end(
        self,
        attempt: Attempt,
        on_finished: Callable[[Environment, asyncio.Future[None]], None] | None,
    ) -> None:
        if not attempt.result.done():  # a bug above must not leave a caller hanging
            attempt.respond(RuntimeResponse.platform_error("Runtime.Unknown", "emulator"))
        if not attempt.finished.done():
            attempt.finished.set_result(None)
            if on_finished is not None:
                on_finished(self, attempt.finished)

    async def _cold_invoke(self, attempt: Attempt) -> None:
        if self._config.snap_start:
            await self._restore_invoke(attempt)
            return
        began = time.monotonic()
        failure = await self._init(began + self._config.init_timeout, attempt)
        if failure == "timeout":
            await self._init_timed_out()
            attempt.arm(self._config.timeout)  # the retried init runs on the invocation's clock
            self._init_phase = "invoke"  # a suppressed init, inside the invocation
            failure = await self._init(attempt.deadline, attempt)
        else:
            attempt.arm(self._config.timeout)
        init_ms = (time.monotonic() - began) * 1000
        if failure is None:
            self._dispatch(attempt)
            await self._complete(attempt, init_ms=init_ms)
            return
        await self._fail_init(attempt, failure, began=began, init_ms=init_ms)

    async def _reset_after_init(self, failure: RuntimeResponse | str) -> None:
        """An init that failed outside any invocation: said as Lambda says it, then the reset."""
        if isinstance(failure, str):
            await self._init_timed_out()
            return
        self._init_ended("error", failure.error_type)
        await self._shutdown("failure")

    async def _init_timed_out(self) -> None:
        """The init overran `init_timeout`: said as Lambda says it, then the reset."""
        limit = self._config.init_timeout
        self._journal.note(f"INIT_REPORT Init Duration: {limit * 1000:.2f} ms\tStatus: timeout")
        self._init_ended("timeout", "Sandbox.Timedout")
        await self._shutdown("timeout")


async def _raise(exc: Exception) -> None:
    raise exc
