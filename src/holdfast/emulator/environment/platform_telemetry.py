"""The platform events an environment emits about its own lifecycle (`platform.init*`,
`platform.runtimeDone`, `platform.restoreRuntimeDone`), each after the runtime's own lines.
"""

from __future__ import annotations

import time
from typing import Any

from .. import telemetry_records
from ..attempt import Attempt
from ..invoke import RuntimeResponse
from .base import EnvironmentBase


class PlatformTelemetry(EnvironmentBase):
    """Emits the lifecycle's platform telemetry events."""

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

    def _runtime_done(self, attempt: Attempt) -> None:
        """The runtime is done with `invocation` (it called `next`, or, when concurrent, it
        finished posting its result): `platform.runtimeDone`, after the lines it printed."""
        if attempt.runtime_finished or self._sandbox is None:
            return
        attempt.runtime_finished = True
        if not self._sandbox.telemetry.listening:
            # The lines go to stdout alone, read by the loop as they come: what the runtime
            # wrote before its `next` was there when the loop saw the `next` arrive, and
            # was read in that same round.
            return
        self._drain_runtime_output()
        result = attempt.result.result() if attempt.result.done() else None
        failed = result is not None and result.failed
        record = telemetry_records.runtime_done(attempt, "error" if failed else "success")
        if failed and result is not None:
            record["errorType"] = result.error_type or "Runtime.Unknown"
        self._sandbox.telemetry.emit("platform.runtimeDone", record)

    def _runtime_failed(self, attempt: Attempt, failure: RuntimeResponse, *, timeout: bool) -> None:
        """`platform.runtimeDone` for an invocation the runtime never finished."""
        if attempt.runtime_finished or self._sandbox is None or attempt.started_wall is None:
            return  # done already, or never handed to the runtime
        attempt.runtime_finished = True
        self._drain_runtime_output()
        record = telemetry_records.runtime_done(attempt, "timeout" if timeout else "failure")
        record["errorType"] = failure.error_type or "Runtime.Unknown"
        self._sandbox.telemetry.emit("platform.runtimeDone", record)

    def _restored(self) -> None:
        """The runtime called `next` after its after-restore hooks."""
        self._drain_runtime_output()
        if self._sandbox is not None:
            self._sandbox.telemetry.emit("platform.restoreRuntimeDone", {"status": "success"})
