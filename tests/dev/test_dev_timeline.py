"""The timeline and the probe's notes, without processes: attribution to invocations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from holdfast.dev.leftovers import LeftOvers
from holdfast.dev.timeline import Timeline
from holdfast.emulator.attempt import FreezeRecord
from holdfast.emulator.report import Report


def _note(path: Path, **note: Any) -> None:
    with path.open("a") as file:
        file.write(json.dumps({"pid": 10, "pgid": 10, **note}) + "\n")


def _start(path: Path, note_id: int, name: str) -> None:
    _note(
        path,
        event="start",
        id=note_id,
        kind="thread",
        name=name,
        file="app.py",
        line=3,
        function="view",
        code="t.start()",
    )


def test_only_work_started_by_the_invocation_and_alive_at_the_freeze_is_named(
    tmp_path: Path,
) -> None:
    notes = tmp_path / "notes.jsonl"
    leftovers = LeftOvers(str(notes))
    _start(notes, 1, "from-init")  # before any invocation: not an invocation's
    leftovers.invocation_started(10, "req-1")
    _start(notes, 2, "finished")
    _note(notes, event="end", id=2)
    _start(notes, 3, "still-running")
    _note(notes, event="drain_cut", cancelled=["send_mail"], spilled=1)
    findings = leftovers.invocation_ended(10, "req-1")
    assert [item.name for item in findings.left_running] == ["still-running"]
    assert findings.left_running[0].where == "app.py:3 in view"
    assert (findings.cut, findings.spilled) == (["send_mail"], 1)
    # Reported once: the next invocation starts clean.
    leftovers.invocation_started(10, "req-2")
    assert leftovers.invocation_ended(10, "req-2").left_running == []


def test_an_entry_joins_the_http_side_and_the_freeze_record(tmp_path: Path) -> None:
    completed = []
    timeline = Timeline(LeftOvers(str(tmp_path / "none")), on_complete=completed.append)
    events: list[tuple[str, dict[str, Any]]] = []
    timeline.subscribe(lambda kind, data: events.append((kind, data)))
    timeline.expect("r1", kind="http", method="GET", path="/x")
    record = FreezeRecord(1, "r1", cold=True, started_at=100.0)
    timeline.started(record)
    record.response_sent_at, record.frozen_at, record.outcome = 100.010, 100.310, "frozen"
    timeline.finished(Report("r1", 310.0, 512, 60, init_duration_ms=400.0, post_response_ms=300.0))
    assert completed == []  # the HTTP status is not known yet
    timeline.answered("r1", 200)
    (entry,) = completed
    assert (entry.status, entry.cold, entry.init_ms, entry.outcome) == (200, True, 400.0, "frozen")
    assert round(entry.response_ms or 0) == 10 and entry.post_response_ms == 300.0
    assert not entry.failed and not entry.drain_cut
    assert events[-1][0] == "invocation" and events[-1][1]["status"] == 200
    assert timeline.snapshot()["invocations"][0]["id"] == "r1"


def test_a_timeout_after_the_response_is_a_drain_cut_by_the_deadline() -> None:
    timeline = Timeline()
    timeline.expect("r2", kind="invoke", method=None, path=None)
    record = FreezeRecord(1, "r2", cold=False, started_at=5.0)
    timeline.started(record)
    record.response_sent_at, record.outcome = 5.1, "timeout"
    timeline.finished(Report("r2", 3000.0, 512, 60, status="timeout"))
    entry = timeline.entry("r2")
    assert entry is not None and entry.drain_cut and entry.failed
