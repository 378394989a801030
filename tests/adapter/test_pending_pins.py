"""Pins on ``holdfast.pending``'s edges: the durable write-ahead hook (registered once, used
for ``durable=True`` only, leased past the deadline), a drain report's equality and repr, and
finished adopted tasks not kept alive. Each wait is one bounded ``run_until_complete``.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from holdfast import pending
from holdfast.pending import DrainReport, PendingWork, WrittenAhead


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def writes(monkeypatch) -> list[tuple[Any, tuple[Any, ...], dict[str, Any], float]]:
    """A write-ahead that knows every function, registered twice, recording each write."""
    monkeypatch.setattr(pending, "_writers", [])
    written: list[tuple[Any, tuple[Any, ...], dict[str, Any], float]] = []

    async def release() -> None:
        return None

    def writer(fn: Any, args: Any, kwargs: Any, lease: float) -> WrittenAhead:
        written.append((fn, args, kwargs, lease))

        async def run() -> Any:
            return fn(*args, **kwargs)

        return WrittenAhead(f"task-{len(written)}", run, release)

    pending.write_ahead_with(writer)
    pending.write_ahead_with(writer)  # registering again is a no-op
    return written


def _in_request(work: PendingWork, call: Any) -> Any:
    token = pending.bind(work)
    try:
        return call()
    finally:
        pending.unbind(token)


def test_durable_work_is_written_ahead_once_leased_past_the_deadline(loop, writes):
    work = PendingWork("req", loop)
    work.context = Context(2000)
    handle = _in_request(work, lambda: pending.after_response(print, "x", durable=True))
    assert [(fn, args, lease) for fn, args, _, lease in writes] == [
        (print, ("x",), 2.0 + pending.DURABLE_LEASE_SLACK)
    ]
    assert handle.task_id == "task-1"


def test_without_a_deadline_durable_work_gets_the_longest_lease(loop, writes):
    work = PendingWork("req", loop)  # no context set: a direct call
    _in_request(work, lambda: pending.after_response(print, durable=True))
    assert [lease for *_, lease in writes] == [pending.DURABLE_LEASE_UNBOUNDED]


def test_plain_after_response_work_writes_nothing_ahead(loop, writes):
    work = PendingWork("req", loop)
    handle = _in_request(work, lambda: pending.after_response(print))
    assert writes == []
    assert handle.task_id is None


def test_drain_reports_compare_by_their_counts():
    report = DrainReport(drained=1, failed=2, spilled=3, cancelled=["a"], overrun=["b"])
    assert report == DrainReport(1, 2, 3, ["a"], ["b"])
    assert report != DrainReport(1, 2, 3, ["a"], [])
    assert report != DrainReport(0, 2, 3, ["a"], ["b"])
    assert report != (1, 2, 3, ["a"], ["b"])
    assert DrainReport() == DrainReport(0, 0, 0, [], [])
    assert repr(report) == (
        "DrainReport(drained=1, failed=2, spilled=3, cancelled=['a'], overrun=['b'])"
    )


def test_a_finished_adopted_task_is_not_kept_alive(loop):
    work = PendingWork("req", loop)

    async def short() -> None:
        return None

    task = loop.create_task(short())
    work.adopt(task, lambda: "short")
    loop.run_until_complete(asyncio.wait_for(asyncio.shield(task), 5))
    loop.run_until_complete(asyncio.sleep(0))  # its done callbacks run
    ended = weakref.ref(task)
    del task
    gc.collect()
    assert ended() is None  # a long request starting many short tasks holds none of them
    assert not work
