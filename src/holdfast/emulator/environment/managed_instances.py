"""Lambda Managed Instances: many attempts at once in one environment, never frozen."""

from __future__ import annotations

import time

from ..attempt import Attempt
from .attempts import Attempts


class ManagedInstances(Attempts):
    """Runs concurrent attempts in one shared environment."""

    async def _concurrent_invoke(self, attempt: Attempt) -> None:
        """One invocation among many in a Managed Instances environment: never frozen, and a
        timeout fails only this invocation (its code goes on running; a late result gets 410)."""
        init_ms = await self._ensure_initialized(attempt)
        if init_ms is None:
            return
        sandbox = self._sandbox
        assert sandbox is not None
        # Dispatched inside the state change that frees a poller: invocations waiting for the
        # same poller must not all see it idle.
        outcome = await self._until(
            lambda: sandbox.idle_pollers > 0,
            attempt.deadline,
            self._processes(),
            on_done=lambda: self._dispatch(attempt),
        )
        if outcome == "done":
            outcome = await self._until(
                lambda: attempt.runtime_finished, attempt.deadline, self._processes()
            )
        record = attempt.record
        if outcome == "done":
            record.outcome = "done"
            response = await attempt.result
            await self._finish(attempt, init_ms=init_ms or None, response=response)
            return
        if not record.started_at:
            record.started_at = time.monotonic()
            self._journal.started(record)
        sandbox.expire(attempt)
        await self._answer_lost(attempt, outcome, init_ms or None)
        if outcome != "timeout":  # the runtime process is gone: so is the environment
            await self._shutdown("failure")

    async def _ensure_initialized(self, attempt: Attempt) -> float | None:
        """Init once for every invocation that arrives meanwhile; the init's duration for the
        invocation that ran it (0.0 for the others), None when it failed (and was answered)."""
        async with self._init_lock:
            if self.warm:
                attempt.arm(self._config.timeout)
                return 0.0
            began = time.monotonic()
            failure = await self._init(began + self._config.init_timeout, attempt)
            init_ms = (time.monotonic() - began) * 1000
            attempt.arm(self._config.timeout)
            if failure is None:
                return init_ms
            await self._fail_init(attempt, failure, began=began, init_ms=init_ms)
            return None
