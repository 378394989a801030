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
from lambda_events import TimedContext


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
    work.context = TimedContext(remaining_ms=2000)
    handle = _in_request(work, lambda: pending.after_response(print, "x", durable=True))
    assert [(fn, args, lease) for fn, args, _, lease in writes] == [
        (print, ("x",), 2.0 + pending.DURABLE_LEASE_SLACK)
    ]
    assert writes[0][3] == 12.0  # the remaining 2 s and 10 s to spare
    assert handle.task_id == "task-1"


def test_without_a_deadline_durable_work_gets_the_longest_lease(loop, writes):
    work = PendingWork("req", loop)  # no context set: a direct call
    _in_request(work, lambda: pending.after_response(print, durable=True))
    assert [lease for *_, lease in writes] == [pending.DURABLE_LEASE_UNBOUNDED]
    assert pending.DURABLE_LEASE_UNBOUNDED == 900.0  # Lambda's longest timeout


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


def test_durable_work_runs_once_the_response_is_sent_and_is_drained(loop, writes):
    work = PendingWork("req", loop)
    ran: list[str] = []
    handle = _in_request(work, lambda: pending.after_response(ran.append, "x", durable=True))
    assert ran == [] and not handle.started  # written ahead, not run before the response
    assert not handle.in_thread  # a writer's work runs on the loop unless it says otherwise
    report = loop.run_until_complete(work.drain(5))
    assert ran == ["x"]
    assert report == DrainReport(drained=1)
    assert handle.done()


def test_durable_work_deferred_after_the_response_starts_at_once(loop, writes):
    work = PendingWork("req", loop)
    work.response_sent()
    ran: list[str] = []
    handle = _in_request(work, lambda: pending.after_response(ran.append, "y", durable=True))
    assert handle.started
    assert loop.run_until_complete(work.drain(5)) == DrainReport(drained=1)
    assert ran == ["y"]


def test_durable_work_pending_elsewhere_does_not_run_here(loop, monkeypatch):
    monkeypatch.setattr(pending, "_writers", [])

    async def release() -> None:
        return None

    pending.write_ahead_with(lambda fn, args, kwargs, lease: WrittenAhead("t-1", None, release))
    work = PendingWork("req", loop)
    handle = _in_request(work, lambda: pending.after_response(print, "z", durable=True))
    assert handle.done() and handle.task_id == "t-1"
    assert not work  # nothing to drain: the pending run of the same task does it
    assert loop.run_until_complete(work.drain(5)) == DrainReport()


def test_durable_work_that_runs_in_a_thread_says_so(loop, monkeypatch):
    monkeypatch.setattr(pending, "_writers", [])

    async def release() -> None:
        return None

    async def run() -> None:
        return None

    in_thread = WrittenAhead("t-2", run, release, in_thread=True)
    pending.write_ahead_with(lambda fn, args, kwargs, lease: in_thread)
    work = PendingWork("req", loop)
    handle = _in_request(work, lambda: pending.after_response(print, durable=True))
    assert handle.in_thread


def test_durable_work_needs_a_writer_that_knows_it(loop, monkeypatch):
    monkeypatch.setattr(pending, "_writers", [])
    work = PendingWork("req", loop)
    with pytest.raises(TypeError, match=r"needs a holdfast task .* not builtins\.print"):
        _in_request(work, lambda: pending.after_response(print, durable=True))
    pending.write_ahead_with(lambda fn, args, kwargs, lease: None)  # knows no function
    with pytest.raises(TypeError, match="a plain function cannot be redelivered"):
        _in_request(work, lambda: pending.after_response(print, durable=True))


def test_the_first_writer_that_knows_the_work_writes_it_ahead(loop, monkeypatch):
    monkeypatch.setattr(pending, "_writers", [])
    asked: list[str] = []

    async def release() -> None:
        return None

    async def run() -> None:
        return None

    def knows(fn: Any, args: Any, kwargs: Any, lease: float) -> WrittenAhead:
        asked.append("knows")
        return WrittenAhead("t-first", run, release)

    def other(fn: Any, args: Any, kwargs: Any, lease: float) -> None:
        asked.append("other")

    pending.write_ahead_with(knows)
    pending.write_ahead_with(other)
    work = PendingWork("req", loop)
    handle = _in_request(work, lambda: pending.after_response(print, durable=True))
    assert (asked, handle.task_id) == (["knows"], "t-first")


def test_work_that_keeps_deferring_more_work_is_cut_at_the_deadline(loop):
    work = PendingWork("req", loop)

    async def link() -> None:
        pending.after_response(link)  # runs in the request's context, copied at defer

    _in_request(work, lambda: pending.after_response(link))
    # Bounded by the outer wait: a drain that never stops fails here instead of hanging.
    report = loop.run_until_complete(asyncio.wait_for(work.drain(0), 5))
    assert report.cancelled
    assert all(name.endswith("link") for name in report.cancelled)


@pytest.mark.parametrize(("remaining_ms", "lease"), [(0, 10.0), (-500, 10.0), (250, 10.25)])
def test_a_lease_past_a_deadline_due_or_gone_is_the_slack(loop, writes, remaining_ms, lease):
    work = PendingWork("req", loop)
    work.context = TimedContext(remaining_ms=remaining_ms)
    _in_request(work, lambda: pending.after_response(print, durable=True))
    assert [written[3] for written in writes] == [lease]


def test_a_drain_with_no_time_left_waits_for_nothing(loop):
    work = PendingWork("req", loop)

    async def short_but_not_instant() -> None:
        await asyncio.sleep(0.3)  # cancelled at once: the test never waits for it

    _in_request(work, lambda: pending.after_response(short_but_not_instant))
    report = loop.run_until_complete(asyncio.wait_for(work.drain(0), 5))
    assert report == DrainReport(cancelled=[pending._describe(short_but_not_instant)])
