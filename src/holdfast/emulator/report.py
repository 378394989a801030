"""The START / END / REPORT log lines Lambda writes around every invocation."""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .attempt import FreezeRecord


def start_line(request_id: str, version: str = "$LATEST") -> str:
    """`START RequestId: … Version: $LATEST`."""
    return f"START RequestId: {request_id} Version: {version}"


@dataclass(frozen=True)
class Report:
    """The measurements of one finished invocation.

    `duration_ms` runs from the event's dispatch to the freeze (or reset): the work after the
    response is inside it, as it is billed. `billed_ms` rounds up to the next millisecond and
    includes the init phase of a cold start (Lambda bills init since August 2025).
    `post_response_ms` is holdfast's own field: the time between the response and the freeze.
    `status` is None for a success, else "error" or "timeout".
    """

    request_id: str
    duration_ms: float
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    restore_duration_ms: float | None = None
    post_response_ms: float | None = None
    status: str | None = None
    error_type: str | None = None

    @property
    def billed_ms(self) -> int:
        """Billed duration in whole milliseconds."""
        return math.ceil(self.duration_ms + (self.init_duration_ms or 0.0))

    @property
    def billed_restore_ms(self) -> int | None:
        """SnapStart: the restore, billed apart from the invocation."""
        if self.restore_duration_ms is None:
            return None
        return math.ceil(self.restore_duration_ms)

    def end_line(self) -> str:
        """`END RequestId: …`."""
        return f"END RequestId: {self.request_id}"

    def report_line(self) -> str:
        """The tab-separated `REPORT RequestId: …` line."""
        fields = [
            f"REPORT RequestId: {self.request_id}",
            f"Duration: {self.duration_ms:.2f} ms",
            f"Billed Duration: {self.billed_ms} ms",
            f"Memory Size: {self.memory_size_mb} MB",
            f"Max Memory Used: {self.max_memory_used_mb} MB",
        ]
        if self.init_duration_ms is not None:
            fields.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        if self.restore_duration_ms is not None:
            fields.append(f"Restore Duration: {self.restore_duration_ms:.2f} ms")
            fields.append(f"Billed Restore Duration: {self.billed_restore_ms} ms")
        if self.post_response_ms is not None:
            fields.append(f"Post-Response Duration: {self.post_response_ms:.2f} ms")
        if self.status is not None:
            fields.append(f"Status: {self.status}")
        if self.error_type is not None:
            fields.append(f"Error Type: {self.error_type}")
        return "\t".join(fields)


class Observer(Protocol):
    """Told of each invocation as it is dispatched and as it ends (e.g. `holdfast dev`).

    `started` gets the invocation's `FreezeRecord`, which the environment keeps filling in
    (response, freeze, outcome); by `finished` it is final. Both run on the emulator's loop and
    must not block it.
    """

    def started(self, record: FreezeRecord) -> None: ...

    def finished(self, report: Report) -> None: ...


class Journal:
    """Where environments record what happened: freeze records, reports and log lines.

    `sink` receives each log line (START, END, REPORT and platform notes); by default they go to
    stdout, where Lambda's would be interleaved with the function's own output. `observer`, if
    given, is told of each invocation as it starts and ends. Only the last `keep` freeze records
    and reports are kept: an emulator left running for days must not grow with every invocation.
    """

    def __init__(
        self,
        sink: Callable[[str], None] | None = None,
        observer: Observer | None = None,
        *,
        keep: int = 1000,
    ) -> None:
        self.freeze_log: deque[FreezeRecord] = deque(maxlen=keep)
        self.reports: deque[Report] = deque(maxlen=keep)
        self._sink = sink or _print
        self._observer = observer

    def started(self, record: FreezeRecord) -> None:
        """An invocation was dispatched to its runtime."""
        self.freeze_log.append(record)
        self._sink(start_line(record.request_id))
        if self._observer is not None:
            self._observer.started(record)

    def finished(self, report: Report) -> None:
        """An invocation ended (frozen or reset)."""
        self.reports.append(report)
        if self._sink is _print:  # stdout: both lines in one write
            _print(f"{report.end_line()}\n{report.report_line()}")
        else:
            self._sink(report.end_line())
            self._sink(report.report_line())
        if self._observer is not None:
            self._observer.finished(report)

    def note(self, line: str) -> None:
        """A platform message, e.g. an init timeout."""
        self._sink(line)


def _print(line: str) -> None:
    # One write (print() writes the line and its end apart, two system calls unbuffered).
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
