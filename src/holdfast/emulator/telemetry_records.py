"""The records of Lambda's platform telemetry events that describe an invocation.

Pure functions of an invocation (and its report): `platform.start`'s and the others' `tracing`,
`platform.runtimeDone` with its documented spans, `platform.report` with its metrics. Times are
wall-clock ISO 8601, durations milliseconds, as the Telemetry API gives them.
"""

from __future__ import annotations

import time
from typing import Any

from .attempt import Attempt
from .report import Report
from .telemetry import iso


def tracing(attempt: Attempt) -> dict[str, str]:
    """The `tracing` object: the X-Ray trace header and its parent segment as `spanId`."""
    parent = attempt.trace_id.partition("Parent=")[2].partition(";")[0]
    return {"spanId": parent, "type": "X-Amzn-Trace-Id", "value": attempt.trace_id}


def span(name: str, start: float, end: float) -> dict[str, Any]:
    """A span from `start` to `end` (epoch seconds)."""
    return {"name": name, "start": iso(start), "durationMs": round((end - start) * 1000, 3)}


def runtime_done(attempt: Attempt, status: str) -> dict[str, Any]:
    """A `platform.runtimeDone` record: durations from the dispatch, in wall-clock time."""
    now_mono, now_wall = time.monotonic(), time.time()

    def wall(moment: float | None) -> float:
        return now_wall - (now_mono - moment) if moment is not None else now_wall

    started = attempt.started_wall or now_wall
    record: dict[str, Any] = {
        "requestId": attempt.request_id,
        "status": status,
        "metrics": {
            "durationMs": round((now_wall - started) * 1000, 3),
            "producedBytes": attempt.produced_bytes,
        },
        "tracing": tracing(attempt),
    }
    response_start = attempt.response_started_at
    response_end = attempt.record.response_sent_at
    if response_start is not None and response_end is not None:
        record["spans"] = [
            span("responseLatency", started, wall(response_start)),
            span("responseDuration", wall(response_start), wall(response_end)),
            span("runtimeOverhead", wall(response_end), now_wall),
        ]
    return record


def report(attempt: Attempt, report: Report) -> dict[str, Any]:
    """A `platform.report` record from the invocation's REPORT line."""
    metrics: dict[str, Any] = {
        "durationMs": round(report.duration_ms, 3),
        "billedDurationMs": report.billed_ms,
        "memorySizeMB": report.memory_size_mb,
        "maxMemoryUsedMB": report.max_memory_used_mb,
    }
    if report.init_duration_ms is not None:
        metrics["initDurationMs"] = round(report.init_duration_ms, 3)
    if report.restore_duration_ms is not None:
        metrics["restoreDurationMs"] = round(report.restore_duration_ms, 3)
        metrics["billedRestoreDurationMs"] = report.billed_restore_ms
    record: dict[str, Any] = {
        "requestId": attempt.request_id,
        "status": report.status or "success",
        "metrics": metrics,
        "tracing": tracing(attempt),
    }
    if report.error_type is not None:
        record["errorType"] = report.error_type
    return record
