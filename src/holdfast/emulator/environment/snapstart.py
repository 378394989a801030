"""SnapStart: the snapshot (init frozen at `restore/next`) and its restore on a cold start."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..attempt import Attempt
from ..invoke import RuntimeResponse
from .attempts import Attempts

# SnapStart: the restore and the after-restore hooks must end within this.
RESTORE_LIMIT = 10.0


class SnapStart(Attempts):
    """Takes an environment's snapshot and restores it."""

    def prepare(self) -> None:
        """SnapStart: init and take the snapshot now, as publishing a version does; the first
        invocation then restores it (and finds the wall clock moved on meanwhile)."""
        if self._config.snap_start and self._snapshot is None and self._sandbox is None:
            self._snapshot = asyncio.create_task(self._take_snapshot(None))

    async def _take_snapshot(self, attempt: Attempt | None) -> RuntimeResponse | str | None:
        """Init up to the runtime's `restore/next` (the before-snapshot hooks have run), then
        freeze: the frozen group is the snapshot. None on success, else the init's failure."""
        self._awaiting_restore = True
        began = time.monotonic()
        failure = await self._init(began + self._config.init_timeout, attempt)
        if failure is None:
            self._stop()
            await self._group.freeze()
            self._snapshotted_at = time.monotonic()
        return failure

    async def _restore_invoke(self, attempt: Attempt) -> None:
        """A SnapStart cold start: the snapshot (taken now if it was not yet), the restore, the
        invocation. Init is not part of the invocation; the restore is (`Restore Duration`)."""
        snapshot, self._snapshot = self._snapshot, None
        began = time.monotonic()
        failure = await (snapshot if snapshot is not None else self._take_snapshot(attempt))
        if failure is not None:
            attempt.arm(self._config.timeout)
            init_ms = (time.monotonic() - began) * 1000
            await self._fail_init(attempt, failure, began=began, init_ms=init_ms)
            return
        restore_failure = await self._restore(attempt)
        attempt.arm(self._config.timeout)
        if restore_failure is not None:
            await self._fail_start(attempt, restore_failure, "restore_error", began, None)
            return
        self._awaiting_restore = False
        self._dispatch(attempt)
        await self._complete(attempt, init_ms=None)

    async def _restore(self, attempt: Attempt) -> RuntimeResponse | None:
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
        attempt.restore_ms = (time.monotonic() - began) * 1000
        failure: RuntimeResponse | None = None
        status = "success"
        if sandbox.restore_failure is not None:
            failure, status = sandbox.restore_failure, "error"
        elif outcome == "timeout":
            message = (
                f"RequestId: {attempt.request_id} Error: "
                f"restore timed out after {RESTORE_LIMIT:.2f} seconds"
            )
            failure, status = RuntimeResponse.platform_error("Sandbox.Timedout", message), "timeout"
        elif outcome != "done":
            failure, status = self._exit_error(attempt, outcome), "failure"
        record: dict[str, Any] = {"status": status}
        if failure is not None:
            record["errorType"] = failure.error_type
            hub.emit("platform.restoreRuntimeDone", dict(record))
        record["metrics"] = {"durationMs": round(attempt.restore_ms, 3)}
        hub.emit("platform.restoreReport", record)
        return failure
