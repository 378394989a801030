"""What `holdfast dev` saw: one entry per invocation, the tasks' latest statuses, and a feed.

The emulator tells the timeline of each invocation as it is dispatched and as it ends (it is
the emulator's `report.Observer`); the dev server adds the HTTP side (method, path, status).
Every change is published to the subscribers (the dashboard's server-sent events); an
invocation is handed to `on_complete` (the console) once it has ended and its HTTP status is
known.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from holdfast.emulator.attempt import FreezeRecord
from holdfast.emulator.report import Report

from .leftovers import LeftOver, LeftOvers

KEEP_INVOCATIONS = 500
KEEP_TASKS = 500

Subscriber = Callable[[str, dict[str, Any]], None]


@dataclass
class Entry:
    """One invocation as the dashboard and the console show it; times are epoch seconds/ms."""

    request_id: str
    seq: int
    kind: str = "invoke"  # "http", "invoke" (the Invoke API) or "init" (holdfast dev's own)
    method: str | None = None
    path: str | None = None
    status: int | None = None
    started_at: float | None = None
    cold: bool = False
    init_ms: float | None = None
    response_ms: float | None = None
    post_response_ms: float | None = None
    duration_ms: float | None = None
    frozen_at: float | None = None
    outcome: str = "running"
    error_type: str | None = None
    generation: int = 0
    left_running: list[LeftOver] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)
    spilled: int = 0
    record: FreezeRecord | None = field(default=None, repr=False)
    reported: bool = False
    announced: bool = False

    @property
    def finished(self) -> bool:
        """The invocation has ended: frozen, timed out, crashed or reset."""
        return self.outcome != "running"

    @property
    def drain_cut(self) -> bool:
        """The response went out, then the deadline ended the work after it: holdfast's drain
        cancelled or spilled some of it to keep within the deadline, or the deadline itself
        reset the environment."""
        timed_out = self.outcome == "timeout" and self.response_ms is not None
        return timed_out or bool(self.cut) or self.spilled > 0

    @property
    def failed(self) -> bool:
        """A function error, a platform failure or a 5xx answer."""
        return (
            self.error_type is not None
            or self.outcome in ("timeout", "exit", "init_error")
            or (self.status is not None and self.status >= 500)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the dashboard."""
        return {
            "id": self.request_id,
            "seq": self.seq,
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "started_at": self.started_at,
            "cold": self.cold,
            "init_ms": self.init_ms,
            "response_ms": self.response_ms,
            "post_response_ms": self.post_response_ms,
            "duration_ms": self.duration_ms,
            "frozen_at": self.frozen_at,
            "outcome": self.outcome,
            "error_type": self.error_type,
            "drain_cut": self.drain_cut,
            "failed": self.failed,
            "generation": self.generation,
            "left_running": [item.to_dict() for item in self.left_running],
            "cut": self.cut,
            "spilled": self.spilled,
        }


class Timeline:
    """The emulator's observer and the store behind the dashboard."""

    def __init__(
        self,
        leftovers: LeftOvers | None = None,
        on_complete: Callable[[Entry], None] | None = None,
    ) -> None:
        self._leftovers = leftovers
        self._on_complete = on_complete
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._tasks: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._subscribers: list[Subscriber] = []
        self._seq = 0
        self._pgids: dict[str, int | None] = {}
        self.generation = 0
        self.pgid_of: Callable[[int], int | None] = lambda environment_id: None
        self.queues: list[dict[str, Any]] = []
        self.app = ""
        self._reloads: list[dict[str, Any]] = []
        # Monotonic readings (the emulator's clock) to epoch seconds.
        self._epoch_offset = time.time() - time.monotonic()

    # -- the feed ---------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber(kind, data)` on every change; returns the unsubscribe function."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def snapshot(self) -> dict[str, Any]:
        """Everything kept, oldest first."""
        return {
            "invocations": [entry.to_dict() for entry in self._entries.values()],
            "tasks": list(self._tasks.values()),
            "queues": self.queues,
            "generation": self.generation,
            "reloads": self._reloads,
            "app": self.app,
        }

    def entry(self, request_id: str) -> Entry | None:
        """The invocation with this request id, if kept."""
        return self._entries.get(request_id)

    def _publish(self, kind: str, data: dict[str, Any]) -> None:
        for subscriber in list(self._subscribers):
            subscriber(kind, data)

    # -- the HTTP side (from the dev server) -----------------------------------------------

    def expect(self, request_id: str, *, kind: str, method: str | None, path: str | None) -> None:
        """An invocation is about to be submitted: what it is for."""
        entry = self._entry(request_id)
        entry.kind, entry.method, entry.path = kind, method, path
        self._changed(entry)

    def answered(self, request_id: str, status: int | None) -> None:
        """The HTTP answer went back to the client (`status` None if it never could)."""
        entry = self._entries.get(request_id)
        if entry is None:
            return
        entry.status = status
        entry.announced = True
        self._changed(entry)

    # -- the emulator's report.Observer ----------------------------------------------------

    def started(self, record: FreezeRecord) -> None:
        """An invocation was dispatched to its environment."""
        entry = self._entry(record.request_id)
        entry.record = record
        entry.cold = record.cold
        entry.started_at = self._epoch(record.started_at)
        entry.outcome = "running"
        pgid = self.pgid_of(record.environment_id)
        self._pgids[record.request_id] = pgid
        if self._leftovers is not None:
            self._leftovers.invocation_started(pgid, record.request_id)
        self._changed(entry)

    def finished(self, report: Report) -> None:
        """An invocation ended: frozen, or the environment reset."""
        entry = self._entry(report.request_id)
        record = entry.record
        if record is not None:
            entry.outcome = record.outcome
            entry.started_at = self._epoch(record.started_at)
            if record.response_sent_at is not None:
                entry.response_ms = (record.response_sent_at - record.started_at) * 1000
            if record.frozen_at is not None:
                entry.frozen_at = self._epoch(record.frozen_at)
        entry.post_response_ms = report.post_response_ms
        entry.duration_ms = report.duration_ms
        entry.init_ms = report.init_duration_ms
        entry.cold = entry.cold or report.init_duration_ms is not None
        entry.error_type = report.error_type
        if entry.outcome == "running":
            entry.outcome = "frozen" if report.status is None else report.status
        if entry.kind == "init" and entry.outcome == "frozen":
            entry.error_type = None  # the warm-up's answer is not the app's: its init counts
        pgid = self._pgids.pop(report.request_id, None)
        if self._leftovers is not None:
            findings = self._leftovers.invocation_ended(pgid, report.request_id)
            entry.left_running = findings.left_running
            entry.cut, entry.spilled = findings.cut, findings.spilled
        self._changed(entry)

    # -- tasks (from the worker's feed) ----------------------------------------------------

    def task(self, status: dict[str, Any]) -> None:
        """The latest status of one task."""
        task_id = str(status["id"])
        self._tasks[task_id] = status
        self._tasks.move_to_end(task_id)
        while len(self._tasks) > KEEP_TASKS:
            self._tasks.popitem(last=False)
        self._publish("task", status)

    def set_queues(self, queues: list[dict[str, Any]]) -> None:
        """The task queues the worker found in the app."""
        self.queues = queues
        self._publish("queues", {"queues": queues})

    def reloaded(self, generation: int, changes: list[str]) -> None:
        """The app was reloaded after `changes`."""
        self.generation = generation
        reload = {"generation": generation, "changes": changes, "at": time.time()}
        self._reloads = [*self._reloads[-50:], reload]
        self._publish("reload", reload)

    # -- helpers ---------------------------------------------------------------------------

    def _entry(self, request_id: str) -> Entry:
        entry = self._entries.get(request_id)
        if entry is None:
            self._seq += 1
            entry = Entry(request_id=request_id, seq=self._seq, generation=self.generation)
            self._entries[request_id] = entry
            while len(self._entries) > KEEP_INVOCATIONS:
                self._entries.popitem(last=False)
        return entry

    def _changed(self, entry: Entry) -> None:
        if self._subscribers:  # no dashboard open: nothing to serialise
            self._publish("invocation", entry.to_dict())
        ready = entry.finished and (entry.kind != "http" or entry.announced)
        if ready and not entry.reported:
            entry.reported = True
            if self._on_complete is not None:
                self._on_complete(entry)

    def _epoch(self, monotonic: float) -> float:
        return monotonic + self._epoch_offset
