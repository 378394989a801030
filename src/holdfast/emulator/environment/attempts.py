"""One attempt in a started environment: dispatch, wait for the freeze (or the loss), report."""

from __future__ import annotations

import time
from collections.abc import Callable

from .. import telemetry_records
from ..attempt import Attempt
from ..invoke import RuntimeResponse
from ..report import Report
from .base import EndWatch, WaitEnd, abandon_stream
from .init import Init


class Attempts(Init):
    """Runs attempts in an initialized environment and answers failed starts."""

    def _dispatch(self, attempt: Attempt, *, thaw: bool = False) -> None:
        """Hand `attempt` to the runtime and its INVOKE event to the extensions; with `thaw`,
        resume the frozen environment right after. The event is then in the runtime's socket
        before the runtime runs again: it wakes once, with its invocation there, rather than at
        the SIGCONT and again as the event arrives. The start is recorded (and told: `holdfast
        dev` counts what the processes start from then on as this invocation's) before the
        event can reach anyone; a thawed attempt's start is its thaw."""
        sandbox = self._sandbox
        assert sandbox is not None
        record = attempt.record
        record.started_at = time.monotonic()
        if thaw:
            record.thawed_at = record.started_at
        attempt.started_wall = time.time()
        self._journal.started(record)
        if sandbox.telemetry.listening:
            sandbox.telemetry.emit(
                "platform.start",
                {
                    "requestId": attempt.request_id,
                    "version": "$LATEST",
                    "tracing": telemetry_records.tracing(attempt),
                },
            )
        sandbox.dispatch(attempt)
        if thaw:
            self._thaw()

    def _watch_completion(self, attempt: Attempt, on_end: Callable[[WaitEnd], None]) -> EndWatch:
        """Tell `on_end` how the dispatched `attempt` ends: "done" the moment the runtime and
        the extensions are all back in `next` (the group is stopped then, `_stop`; the freeze
        waits until the stop shows), else its timeout or a process's exit."""
        sandbox = self._sandbox
        assert sandbox is not None
        return self._watch(
            lambda: sandbox.quiescent,
            attempt.deadline,
            self._processes(),
            on_end,
            on_done=self._stop,
        )

    async def _complete(self, attempt: Attempt, *, init_ms: float | None) -> None:
        """Wait for the dispatched invocation to end, then freeze (or reset) the environment."""
        outcome = await self._ended(lambda on_end: self._watch_completion(attempt, on_end))
        await self._completed(attempt, outcome, init_ms=init_ms)

    async def _completed(
        self, attempt: Attempt, outcome: WaitEnd, *, init_ms: float | None
    ) -> None:
        """Freeze (or reset) the environment after `attempt` ended with `outcome`."""
        record = attempt.record
        if outcome == "done":
            await self._group.freeze()
            record.frozen_at = time.monotonic()
            record.outcome = "frozen"
            await self._finish(attempt, init_ms=init_ms, response=attempt.result.result())
            return
        await self._answer_lost(attempt, outcome, init_ms)
        await self._shutdown("timeout" if outcome == "timeout" else "failure")

    async def _answer_lost(self, attempt: Attempt, outcome: WaitEnd, init_ms: float | None) -> None:
        """Answer `invocation` with its timeout or the runtime's exit (`outcome`)."""
        timeout = outcome == "timeout"
        failure = self._timed_out(attempt) if timeout else self._exit_error(attempt, outcome)
        attempt.record.outcome = "timeout" if timeout else "exit"
        self._runtime_failed(attempt, failure, timeout=timeout)
        abandon_stream(attempt, failure)
        attempt.respond(failure)
        await self._finish(attempt, init_ms=init_ms, response=failure)

    async def _fail_init(
        self,
        attempt: Attempt,
        failure: RuntimeResponse | str,
        *,
        began: float,
        init_ms: float,
    ) -> None:
        """Answer `invocation` with the init's failure ("timeout" or the error), then reset."""
        if isinstance(failure, str):
            response, outcome = self._timed_out(attempt), "timeout"
        else:
            response, outcome = failure, "init_error"
        self._init_ended("timeout" if isinstance(failure, str) else "error", response.error_type)
        await self._fail_start(attempt, response, outcome, began, init_ms)

    async def _fail_start(
        self,
        attempt: Attempt,
        response: RuntimeResponse,
        outcome: str,
        began: float,
        init_ms: float | None,
    ) -> None:
        """Answer `invocation` with a failure of the environment's start (init or restore),
        then reset."""
        record = attempt.record
        record.outcome = outcome
        record.started_at = began
        self._journal.started(record)
        attempt.respond(response)
        await self._finish(attempt, init_ms=init_ms, response=response)
        await self._shutdown("failure")

    async def _finish(
        self, attempt: Attempt, *, init_ms: float | None, response: RuntimeResponse
    ) -> None:
        record = attempt.record
        ended = record.frozen_at or time.monotonic()
        post = record.post_response
        status, error_type = None, None
        if record.outcome == "timeout":
            status = "timeout"
        elif response.failed:
            status, error_type = "error", response.error_type
        report = Report(
            request_id=attempt.request_id,
            duration_ms=(ended - record.started_at) * 1000,
            memory_size_mb=self._config.memory,
            max_memory_used_mb=self._group.peak_memory_mb(),
            init_duration_ms=init_ms,
            restore_duration_ms=attempt.restore_ms,
            post_response_ms=None if post is None else post * 1000,
            status=status,
            error_type=error_type,
        )
        self._journal.finished(report)
        if self._sandbox is not None and self._sandbox.telemetry.listening:
            # `platform.end` is the Logs API's alone; Telemetry API subscribers never see it.
            self._sandbox.telemetry.emit("platform.end", {"requestId": attempt.request_id})
            self._sandbox.telemetry.emit(
                "platform.report", telemetry_records.report(attempt, report)
            )
