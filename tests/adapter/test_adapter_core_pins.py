"""Pins on the core's arithmetic and edges, each a fault that would otherwise pass unnoticed or
hang: the drain budget, work added while draining, overrunning work really cancelled, a raising
after-response function, streaming backpressure and release, ``receive()`` after the body.

Every wait is bounded by a short deadline (``asyncio.wait_for``), so a fault fails the test
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

import holdfast
from holdfast import bridge, pending
from holdfast.bridge import AppEnded, BufferedSink, Exchange, StreamSink
from holdfast.errors import ASGIProtocolError
from holdfast.outcome import Buffered, Failed
from holdfast.pending import PendingWork, drain_budget
from lambda_events import TimedContext

DEADLINE = 5.0


# -- the drain budget ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("remaining_ms", "margin", "budget"),
    [
        (2000, 0.5, 1.5),
        (501, 0.5, 0.001),
        (500, 0.5, 0.0),
        (100, 0.5, 0.0),  # never negative
        (0, 0.0, 0.0),
        (30_000, 0.0, 30.0),
    ],
)
def test_the_drain_budget_is_the_remaining_time_less_the_margin(remaining_ms, margin, budget):
    assert drain_budget(TimedContext(remaining_ms=remaining_ms), margin) == pytest.approx(budget)


def test_no_deadline_no_budget():
    assert drain_budget(None) is None
    assert drain_budget(object(), 0.5) is None
    # The default margin: 0.5 s.
    assert drain_budget(TimedContext(remaining_ms=1500)) == pytest.approx(1.0)


# -- the drain -----------------------------------------------------------------------------------
def test_work_added_while_draining_is_waited_for_too():
    order: list[str] = []

    async def second() -> None:
        await asyncio.sleep(0.01)  # still running when the work that added it has ended
        order.append("second")

    async def first() -> None:
        await asyncio.sleep(0)
        order.append("first")
        pending.after_response(second)  # from inside after-response work

    async def main() -> pending.DrainReport:
        work = PendingWork("r", asyncio.get_running_loop())
        token = pending.bind(work)
        try:
            work.defer(first)
        finally:
            pending.unbind(token)
        return await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)

    report = asyncio.run(main())
    assert order == ["first", "second"]
    assert (report.drained, report.failed, report.cancelled) == (2, 0, [])


def test_overrunning_work_is_really_cancelled_and_named():
    cancelled = []

    async def overruns() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> tuple[pending.DrainReport, bool]:
        work = PendingWork("r", asyncio.get_running_loop())
        handle = work.defer(overruns)
        report = await asyncio.wait_for(work.drain(0.01), DEADLINE)
        await asyncio.sleep(0)  # the cancellation is delivered
        assert handle.future is not None
        return report, handle.future.cancelled()

    report, future_cancelled = asyncio.run(main())
    assert cancelled == [True] and future_cancelled
    assert len(report.cancelled) == 1 and report.cancelled[0].endswith("overruns")
    assert (report.drained, report.failed) == (0, 0)


def test_a_raising_after_response_function_is_counted_and_logged_with_the_request_id(caplog):
    def explodes() -> None:
        raise RuntimeError("boom")

    async def fine() -> None:
        pass

    async def main() -> pending.DrainReport:
        work = PendingWork("req-42", asyncio.get_running_loop())
        work.defer(explodes)
        work.defer(fine)
        return await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)

    with caplog.at_level(logging.ERROR, "holdfast"):
        report = asyncio.run(main())
    assert (report.drained, report.failed, report.cancelled) == (1, 1, [])
    [record] = [r for r in caplog.records if "failed" in r.getMessage()]
    assert "req-42" in record.getMessage() and "explodes" in record.getMessage()
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])


def test_deferred_work_waits_for_the_response():
    async def main() -> tuple[bool, bool]:
        work = PendingWork("r", asyncio.get_running_loop())
        handle = work.defer(lambda: None)
        before = handle.started
        work.response_sent()
        return before, handle.started

    assert asyncio.run(main()) == (False, True)


# -- streaming backpressure ----------------------------------------------------------------------
def test_the_17th_unread_chunk_blocks_the_app_and_a_take_frees_it():
    async def main() -> tuple[int, bool, bool]:
        loop = asyncio.get_running_loop()
        sink = StreamSink(loop, frozenset())
        sink.start(200, [])
        for _ in range(StreamSink._MAX_QUEUED):
            assert sink.write(b"x") is None  # room for 16: never waits
        room = sink.write(b"17")
        assert room is not None
        await asyncio.sleep(0.01)
        blocked = not room.done()
        app = loop.create_future()
        assert await asyncio.wait_for(sink.take(app), DEADLINE) == b"x"
        await asyncio.wait_for(room, DEADLINE)
        return StreamSink._MAX_QUEUED, blocked, room.done()

    queued, blocked, freed = asyncio.run(main())
    assert queued == 16 and blocked and freed


def test_release_frees_a_blocked_writer_and_drops_later_chunks():
    async def main() -> tuple[bool, bytes]:
        loop = asyncio.get_running_loop()
        sink = StreamSink(loop, frozenset())
        sink.start(200, [])
        for _ in range(StreamSink._MAX_QUEUED):
            sink.write(b"x")
        room = sink.write(b"blocked")
        assert room is not None
        await asyncio.sleep(0.01)
        assert not room.done()
        sink.release()
        await asyncio.wait_for(room, DEADLINE)
        assert sink.write(b"after") is None  # goes nowhere, never waits
        return room.done(), sink.response().body

    done, body = asyncio.run(main())
    assert done and body == b""


def test_a_held_status_buffers_without_backpressure():
    async def main() -> bytes:
        sink = StreamSink(asyncio.get_running_loop(), frozenset({500}))
        sink.start(500, [])
        for _ in range(StreamSink._MAX_QUEUED + 5):
            assert sink.write(b"e") is None
        return sink.response().body

    assert asyncio.run(main()) == b"e" * (StreamSink._MAX_QUEUED + 5)


# -- receive() -----------------------------------------------------------------------------------
def test_receive_gives_the_body_once_then_waits_for_the_response_then_disconnects():
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        exchange = Exchange(b"payload", BufferedSink(loop), loop, head=False)
        exchange.hand_over()
        seen: list[Any] = [await exchange.receive()]
        waiting = loop.create_task(exchange.receive())
        await asyncio.sleep(0.01)
        seen.append(waiting.done())  # the client stays connected until the response is complete
        await exchange.send({"type": "http.response.start", "status": 200, "headers": []})
        await exchange.send({"type": "http.response.body", "body": b"ok"})
        seen.append(await asyncio.wait_for(waiting, DEADLINE))
        seen.append(await asyncio.wait_for(exchange.receive(), DEADLINE))  # and from then on
        return seen

    first, done_early, after, again = asyncio.run(main())
    assert first == {"type": "http.request", "body": b"payload", "more_body": False}
    assert done_early is False
    assert after == again == {"type": "http.disconnect"}


def test_a_buffered_wait_ends_with_the_response_or_the_app():
    async def main() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        sink = BufferedSink(loop)
        app = loop.create_future()
        waiting = loop.create_task(sink.wait(app))
        await asyncio.sleep(0)
        sink.close()  # the response is complete
        await asyncio.wait_for(waiting, DEADLINE)
        ended = loop.create_future()
        waiting_for_end = loop.create_task(sink.wait(ended))
        await asyncio.sleep(0)
        ended.set_result(None)  # the app's task ended without a response
        await asyncio.wait_for(waiting_for_end, DEADLINE)
        return waiting.done(), waiting_for_end.done()

    assert asyncio.run(main()) == (True, True)


# -- final callbacks, handles, the current set -----------------------------------------------------
def test_final_callbacks_run_once_after_everything_else_and_are_counted():
    order: list[str] = []

    async def work() -> None:
        await asyncio.sleep(0)
        order.append("work")

    def flush() -> None:
        order.append("flush")

    async def main() -> pending.DrainReport:
        loop = asyncio.get_running_loop()
        pending_work = PendingWork("r", loop)
        pending_work.finally_(flush)
        pending_work.finally_(flush)  # registered once
        pending_work.defer(work)
        assert pending_work  # a final callback alone is work owed
        report = await asyncio.wait_for(pending_work.drain(DEADLINE), DEADLINE)
        assert not pending_work
        return report

    report = asyncio.run(main())
    assert order == ["work", "flush"]
    assert (report.drained, report.failed, report.cancelled) == (2, 0, [])


def test_a_work_handle_tells_its_state():
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        work = PendingWork("r", loop)
        token = pending.bind(work)
        try:
            assert pending.current() is work
            release = asyncio.Event()
            handle = pending.after_response(release.wait)
        finally:
            pending.unbind(token)
        assert pending.current() is None
        states = [repr(handle), str(handle.done())]
        work.response_sent()
        await asyncio.sleep(0)
        states += [repr(handle), str(handle.done())]
        release.set()
        await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)
        states += [repr(handle), str(handle.done())]
        return states

    states = asyncio.run(main())
    assert [state.rsplit(" ", 1)[-1] for state in states[0::2]] == [
        "response>",
        "running>",
        "done>",
    ]
    assert states[0].endswith("waiting for response>")
    assert states[1::2] == ["False", "False", "True"]


def test_a_failing_spill_falls_back_to_cancelling_and_says_so(monkeypatch, caplog):
    async def forever() -> None:
        await asyncio.Event().wait()

    def spiller(fn: Any, args: Any, kwargs: Any) -> Any:
        async def spill() -> None:
            raise ConnectionError("the queue is down")

        return spill

    monkeypatch.setattr(pending, "_spillers", [spiller])

    async def main() -> pending.DrainReport:
        work = PendingWork("req-7", asyncio.get_running_loop())
        work.defer(forever)
        return await asyncio.wait_for(work.drain(0.01), DEADLINE)

    with caplog.at_level(logging.WARNING, "holdfast"):
        report = asyncio.run(main())
    assert (report.spilled, len(report.cancelled)) == (0, 1)
    assert "req-7: could not spill" in caplog.text
    assert "was cancelled" in caplog.text


# -- threads: the overrun grace --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("margin", "grace"), [(None, 0.3), (0.5, 0.3), (1.2, 1.0), (0.2, 0.0), (0.1, 0.0), (0.0, 0.0)]
)
def test_the_overrun_grace_is_the_margin_less_the_slack_never_negative(margin, grace):
    async def main() -> float:
        return PendingWork("r", asyncio.get_running_loop(), margin=margin).overrun_grace

    assert asyncio.run(main()) == pytest.approx(grace)


def test_work_in_a_thread_is_waited_for_into_the_grace_past_the_drain_deadline():
    gate = threading.Event()

    async def main() -> pending.DrainReport:
        loop = asyncio.get_running_loop()
        work = PendingWork("r", loop, margin=1.1)  # a grace of 0.9 s
        work.defer(gate.wait, DEADLINE)
        loop.call_later(0.05, gate.set)  # after the drain's own (zero) budget
        return await asyncio.wait_for(work.drain(0.0), DEADLINE * 2)

    report = asyncio.run(main())
    assert (report.drained, report.overrun, report.cancelled) == (1, [], [])


def test_thread_work_added_by_the_last_batch_past_the_deadline_still_gets_the_grace():
    # Work that async work adds as the drain's deadline passes is settled after the loop: a
    # thread among it is waited for into the grace like any other, not called an overrun.
    gate = threading.Event()

    async def main() -> pending.DrainReport:
        loop = asyncio.get_running_loop()
        work = PendingWork("r", loop, margin=1.1)  # a grace of 0.9 s

        async def adds_a_thread() -> None:
            await asyncio.sleep(0.02)
            pending.after_response(gate.wait, DEADLINE)  # joins no batch: this one is waited
            loop.call_later(0.2, gate.set)  # opens after the drain's deadline, inside the grace
            await asyncio.sleep(DEADLINE)  # cut at the deadline

        token = pending.bind(work)
        try:
            work.defer(adds_a_thread)
        finally:
            pending.unbind(token)
        return await asyncio.wait_for(work.drain(0.1), DEADLINE * 2)

    report = asyncio.run(main())
    assert report.overrun == []
    assert report.drained == 1  # the thread; the async work was cut at the deadline


def test_work_in_a_thread_past_the_grace_overruns_is_named_and_left_running(caplog):
    gate = threading.Event()
    finished = threading.Event()

    def blocks() -> None:
        gate.wait(DEADLINE)
        finished.set()

    async def main() -> pending.DrainReport:
        work = PendingWork("req-9", asyncio.get_running_loop(), margin=0.25)
        work.defer(blocks)
        return await asyncio.wait_for(work.drain(0.0), DEADLINE)

    loop = asyncio.new_event_loop()  # not asyncio.run: it would join the blocked thread
    try:
        with caplog.at_level(logging.ERROR, "holdfast"):
            report = loop.run_until_complete(main())
        assert not finished.is_set()  # still running: a thread cannot be cancelled
        [overrun] = report.overrun
        assert overrun.endswith("<locals>.blocks")
        assert (report.drained, report.cancelled, report.failed) == (0, [], 0)
        assert "req-9" in caplog.text and "still running in its thread" in caplog.text
        assert pending.name_cut_threads("shutdown") is True
        assert "shutdown: after-response work still running in its thread is cut" in caplog.text
    finally:
        gate.set()
        assert finished.wait(DEADLINE)
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    assert pending.name_cut_threads("shutdown") is False


# -- adopted and detached tasks, what is owed --------------------------------------------------
def test_adopted_tasks_are_owed_while_they_run_and_drained_with_their_description():
    async def main() -> tuple[list[bool], pending.DrainReport]:
        loop = asyncio.get_running_loop()
        work = PendingWork("r", loop)
        owed = [bool(work)]  # nothing yet
        release = asyncio.Event()
        task = loop.create_task(release.wait())
        work.adopt(task, lambda: "task waits")
        work.adopt(task, lambda: "task adopted twice")  # once
        owed.append(bool(work))
        ended = loop.create_task(asyncio.sleep(0))
        await ended
        work.adopt(ended, lambda: "task ended")  # already done: not adopted
        loop.call_soon(release.set)
        report = await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)
        owed.append(bool(work))
        return owed, report

    owed, report = asyncio.run(main())
    assert owed == [False, True, False]
    assert (report.drained, report.cancelled) == (1, [])


def test_an_adopted_task_that_ends_before_the_drain_drops_out():
    async def main() -> tuple[bool, pending.DrainReport]:
        loop = asyncio.get_running_loop()
        work = PendingWork("r", loop)
        task = loop.create_task(asyncio.sleep(0))
        work.adopt(task, lambda: "task quick")
        await task
        await asyncio.sleep(0)  # its done callback
        owed = bool(work)
        return owed, await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)

    owed, report = asyncio.run(main())
    assert owed is False and (report.drained, report.cancelled) == (0, [])


def test_an_adopted_task_cut_off_is_cancelled_with_the_detach_hint(caplog):
    async def main() -> tuple[pending.DrainReport, bool]:
        loop = asyncio.get_running_loop()
        work = PendingWork("r", loop)
        task = loop.create_task(asyncio.Event().wait())
        work.adopt(task, lambda: "task forever at app.py:3")
        report = await asyncio.wait_for(work.drain(0.01), DEADLINE)
        await asyncio.sleep(0)
        return report, task.cancelled()

    with caplog.at_level(logging.ERROR, "holdfast"):
        report, cancelled = asyncio.run(main())
    assert report.cancelled == ["task forever at app.py:3"] and cancelled
    assert "holdfast.detach(task)" in caplog.text


def test_a_detached_task_is_neither_waited_for_nor_cancelled_nor_counted():
    async def main() -> tuple[pending.DrainReport, bool, bool]:
        loop = asyncio.get_running_loop()
        work = PendingWork("r", loop)
        adopted = loop.create_task(asyncio.Event().wait())
        work.adopt(adopted, lambda: "task adopted")
        work.detach(adopted)
        tracked = loop.create_task(asyncio.Event().wait())
        work.track(tracked, "tracked")
        work.detach(tracked)
        report = await asyncio.wait_for(work.drain(0.01), DEADLINE)
        await asyncio.sleep(0)
        running = not adopted.done() and not tracked.done()
        adopted.cancel()
        tracked.cancel()
        return report, running, bool(work)

    report, running, owed = asyncio.run(main())
    assert running and not owed
    assert (report.drained, report.failed, report.cancelled, report.overrun) == (0, 0, [], [])


def test_tracked_work_that_was_cancelled_elsewhere_is_reported_cancelled():
    async def main() -> pending.DrainReport:
        loop = asyncio.get_running_loop()
        work = PendingWork("r", loop)
        task = loop.create_task(asyncio.Event().wait())
        work.track(task, "the app after its response")
        await asyncio.sleep(0)
        task.cancel()
        return await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)

    report = asyncio.run(main())
    assert report.cancelled == ["the app after its response"] and report.drained == 0


def test_a_tracked_failure_logs_its_own_words(caplog):
    async def main() -> pending.DrainReport:
        loop = asyncio.get_running_loop()
        work = PendingWork("req-3", loop)

        async def fails() -> None:
            await asyncio.sleep(0)
            raise ValueError("late")

        work.track(loop.create_task(fails()), "the app", failure="the app raised afterwards")
        return await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)

    with caplog.at_level(logging.ERROR, "holdfast"):
        report = asyncio.run(main())
    assert report.failed == 1
    assert "request req-3: the app raised afterwards" in caplog.text


# -- the drain being cancelled (a shutdown) --------------------------------------------------------
def test_a_cancelled_drain_cancels_and_names_its_async_work_but_not_threads(caplog):
    gate = threading.Event()

    async def forever() -> None:
        await asyncio.Event().wait()

    async def main() -> tuple[bool, bool, bool]:
        loop = asyncio.get_running_loop()
        work = PendingWork("req-5", loop)
        async_handle = work.defer(forever)
        thread_handle = work.defer(gate.wait, DEADLINE)
        adopted = loop.create_task(asyncio.Event().wait())
        work.adopt(adopted, lambda: "task adopted")
        drain = loop.create_task(work.drain(None))
        await asyncio.sleep(0.01)
        drain.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(drain, DEADLINE)
        await asyncio.sleep(0)
        assert async_handle.future is not None and thread_handle.future is not None
        cut = async_handle.future.cancelled() and adopted.cancelled()
        thread_running = not thread_handle.future.done()
        gate.set()
        await asyncio.wait_for(thread_handle.future, DEADLINE)
        return cut, thread_running, thread_handle.future.cancelled()

    with caplog.at_level(logging.ERROR, "holdfast"):
        cut, thread_running, thread_cancelled = asyncio.run(main())
    assert cut and thread_running and not thread_cancelled
    assert (
        "req-5: after-response work" in caplog.text and "cut short by the shutdown" in caplog.text
    )
    assert "forever" in caplog.text and "task adopted" in caplog.text


# -- spilling --------------------------------------------------------------------------------------
def test_cut_off_work_a_spiller_knows_is_spilled_and_counted(monkeypatch, caplog):
    async def forever(n: int, k: int) -> None:
        await asyncio.Event().wait()

    class Queued:
        id = "task-1"

    seen: list[Any] = []

    def spiller(fn: Any, args: Any, kwargs: Any) -> Any:
        if fn is not forever:
            return None

        async def spill() -> Queued:
            seen.append((args, kwargs))
            return Queued()

        return spill

    def unknown(fn: Any, args: Any, kwargs: Any) -> Any:
        return None

    monkeypatch.setattr(pending, "_spillers", [])
    pending.spill_with(unknown)
    pending.spill_with(spiller)
    pending.spill_with(spiller)  # once

    async def main() -> tuple[pending.DrainReport, Any]:
        work = PendingWork("req-8", asyncio.get_running_loop())
        handle = work.defer(forever, 1, k=2)
        other = work.defer(asyncio.Event().wait)
        assert other.spill is None
        report = await asyncio.wait_for(work.drain(0.01), DEADLINE)
        return report, handle.spilled_as

    with caplog.at_level(logging.WARNING, "holdfast"):
        report, spilled_as = asyncio.run(main())
    assert seen == [((1,), {"k": 2})] and isinstance(spilled_as, Queued)
    assert report.spilled == 1 and len(report.cancelled) == 1
    assert "req-8: after-response work" in caplog.text and "as task-1" in caplog.text


# -- what deferred work runs on, and with ----------------------------------------------------------
def test_coroutine_functions_however_wrapped_run_on_the_loop_plain_ones_in_a_thread():
    import contextvars
    import functools

    where: dict[str, Any] = {}
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("v", default="unset")

    async def on_loop(name: str) -> None:
        where[name] = (threading.current_thread(), variable.get())

    @functools.wraps(on_loop)
    def wrapped(name: str) -> Any:
        return on_loop(name)

    class Callable_:
        async def __call__(self, name: str) -> None:
            await on_loop(name)

    def in_thread(name: str) -> None:
        where[name] = (threading.current_thread(), variable.get())

    async def main() -> Any:
        work = PendingWork("r", asyncio.get_running_loop())
        variable.set("as deferred")
        handles = [
            work.defer(on_loop, "plain"),
            work.defer(wrapped, "wrapped"),
            work.defer(Callable_(), "object"),
            work.defer(in_thread, "thread"),
        ]
        variable.set("changed later")
        report = await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)
        return report, [h.in_thread for h in handles]

    report, in_threads = asyncio.run(main())
    main_thread = threading.main_thread()
    assert report.drained == 4 and in_threads == [False, False, False, True]
    assert [where[n][0] is main_thread for n in ("plain", "wrapped", "object", "thread")] == [
        True,
        True,
        True,
        False,
    ]
    assert {where[n][1] for n in where} == {"as deferred"}


def test_work_deferred_after_the_response_starts_at_once():
    async def main() -> tuple[bool, bool]:
        work = PendingWork("r", asyncio.get_running_loop())
        work.response_sent()
        handle = work.defer(asyncio.sleep, 0)
        started = handle.started
        await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)
        return started, handle.done()

    assert asyncio.run(main()) == (True, True)


def test_the_drain_sends_the_response_signal_itself_when_the_host_did_not():
    ran: list[bool] = []

    async def main() -> pending.DrainReport:
        work = PendingWork("r", asyncio.get_running_loop())
        work.defer(ran.append, True)
        return await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)

    assert asyncio.run(main()).drained == 1 and ran == [True]


def test_outside_a_request_after_response_refuses_and_on_response_sent_joins_the_work():
    with pytest.raises(RuntimeError, match="outside a request handled by holdfast"):
        pending.after_response(print)

    async def main() -> tuple[str, pending.DrainReport]:
        work = PendingWork("r", asyncio.get_running_loop())
        token = pending.bind(work)
        try:
            handle = pending.on_response_sent(lambda: None)
        finally:
            pending.unbind(token)
        return handle.description, await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)

    description, report = asyncio.run(main())
    assert description.startswith(f"{__name__}.test_outside_a_request")
    assert description.endswith("<locals>.<lambda>")
    assert report.drained == 1


def test_work_without_a_module_or_name_is_described_by_what_it_has():
    class Unnamed:
        def __call__(self) -> None:
            pass

        def __repr__(self) -> str:
            return "<unnamed>"

    def named() -> None:
        pass

    named.__module__ = None  # type: ignore[assignment]

    async def main() -> list[str]:
        work = PendingWork("r", asyncio.get_running_loop())
        return [work.defer(Unnamed()).description, work.defer(named).description]

    unnamed, no_module = asyncio.run(main())
    assert unnamed == f"{__name__}.<unnamed>"
    assert (
        no_module == "test_work_without_a_module_or_name_is_described_by_what_it_has.<locals>.named"
    )


def test_final_callbacks_may_be_async_and_their_failure_is_counted(caplog):
    async def flush() -> None:
        raise OSError("exporter down")

    async def main() -> pending.DrainReport:
        work = PendingWork("r", asyncio.get_running_loop())
        work.finally_(flush)
        return await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)

    with caplog.at_level(logging.ERROR, "holdfast"):
        report = asyncio.run(main())
    assert (report.drained, report.failed) == (0, 1) and "exporter down" in caplog.text


def test_a_final_callback_that_overruns_the_deadline_is_cancelled():
    async def hangs() -> None:
        await asyncio.Event().wait()

    async def main() -> pending.DrainReport:
        work = PendingWork("r", asyncio.get_running_loop())
        work.finally_(hangs)
        return await asyncio.wait_for(work.drain(0.01), DEADLINE)

    report = asyncio.run(main())
    assert len(report.cancelled) == 1 and report.cancelled[0].endswith("hangs")


def test_threads_the_app_started_and_left_running_are_named(caplog):
    gate = threading.Event()

    def app_thread() -> None:
        gate.wait(DEADLINE)

    before = threading.Thread(target=app_thread, name="before")
    before.start()
    try:

        async def main() -> tuple[list[str], list[str]]:
            work = PendingWork("req-2", asyncio.get_running_loop())
            quiet = work.name_threads_left()
            during = threading.Thread(target=app_thread, name="started-during")
            during.start()
            library = threading.Thread(target=gate.wait, args=(DEADLINE,), name="library")
            library.start()
            return quiet, work.name_threads_left()

        with caplog.at_level(logging.WARNING, "holdfast"):
            quiet, named = asyncio.run(main())
    finally:
        gate.set()
    assert quiet == [] and named == ["started-during"]
    assert "req-2: thread 'started-during'" in caplog.text
    assert "test_adapter_core_pins.py:" in caplog.text and "in app_thread" in caplog.text


# -- the exchange: message validation and shapes ------------------------------------------------
def _exchange(
    *, head: bool = False, sink: Any = None, handed_over: bool = True
) -> tuple[Exchange, Any]:
    loop = asyncio.get_running_loop()
    sink = BufferedSink(loop) if sink is None else sink
    exchange = Exchange(b"", sink, loop, head=head)
    if handed_over:
        exchange.hand_over()
    return exchange, sink


START = {"type": "http.response.start", "status": 200, "headers": []}


@pytest.mark.parametrize("status", [99, 600, "200", 200.0, None, True])
def test_a_status_outside_100_to_599_or_not_an_int_is_refused(status):
    async def main() -> None:
        exchange, _ = _exchange()
        await exchange.send({"type": "http.response.start", "status": status})

    with pytest.raises(ASGIProtocolError, match="invalid HTTP status code"):
        asyncio.run(main())


@pytest.mark.parametrize("status", [100, 599])
def test_the_status_bounds_are_accepted(status):
    async def main() -> int:
        exchange, sink = _exchange()
        await exchange.send({"type": "http.response.start", "status": status})
        await exchange.send({"type": "http.response.body", "body": b"x"})
        return sink.response().status

    assert asyncio.run(main()) == status


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([START, START], "sent twice"),
        ([{"type": "http.response.body", "body": b"x"}], "before http.response.start"),
        ([START, {"type": "http.response.body"}, {"type": "http.response.body"}], "after the"),
        ([{"type": "websocket.send"}], "unexpected ASGI message 'websocket.send'"),
    ],
)
def test_messages_out_of_order_or_unknown_are_refused(messages, error):
    async def main() -> None:
        exchange, _ = _exchange()
        for message in messages:
            await exchange.send(message)

    with pytest.raises(ASGIProtocolError, match=error):
        asyncio.run(main())


def test_headers_are_lowercased_bytes_trailers_ignored_and_the_body_defaults_empty():
    async def main() -> Any:
        exchange, sink = _exchange()
        await exchange.send(
            {"type": "http.response.start", "status": 201, "headers": [(b"X-One", bytearray(b"A"))]}
        )
        await exchange.send({"type": "http.response.body", "more_body": True})
        await exchange.send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await exchange.send({"type": "http.response.trailers", "headers": []})
        await exchange.send({"type": "http.response.body", "body": bytearray(b"c")})
        return sink.response(), exchange.complete

    response, complete = asyncio.run(main())
    assert (response.status, response.headers, response.body) == (201, [(b"x-one", b"A")], b"abc")
    assert type(response.headers[0][1]) is bytes and complete


@pytest.mark.parametrize(("head", "status", "body"), [
    (True, 200, b""), (False, 204, b""), (False, 304, b""), (False, 205, b"x"), (False, 200, b"x")
])  # fmt: skip
def test_head_204_and_304_responses_carry_no_body(head, status, body):
    async def main() -> bytes:
        exchange, sink = _exchange(head=head)
        await exchange.send({"type": "http.response.start", "status": status})
        await exchange.send({"type": "http.response.body", "body": b"x"})
        return sink.response().body

    assert asyncio.run(main()) == body


def test_the_final_send_waits_for_the_hand_over_and_not_after_it():
    async def main() -> tuple[bool, bool, bool]:
        loop = asyncio.get_running_loop()
        exchange, _ = _exchange(handed_over=False)
        await exchange.send(START)
        await exchange.send({"type": "http.response.body", "body": b"a", "more_body": True})
        final = loop.create_task(exchange.send({"type": "http.response.body"}))
        await asyncio.sleep(0.01)
        waited = not final.done()
        exchange.hand_over()
        await asyncio.wait_for(final, DEADLINE)
        exchange.hand_over()  # again: harmless
        other, _ = _exchange(handed_over=True)  # handed over before the final send
        await other.send(START)
        await asyncio.wait_for(other.send({"type": "http.response.body"}), DEADLINE)
        return waited, final.done(), other.complete

    assert asyncio.run(main()) == (True, True, True)


def test_receive_after_the_response_disconnects_at_once():
    async def main() -> list[Any]:
        exchange, _ = _exchange()
        await exchange.send(START)
        await exchange.send({"type": "http.response.body"})
        first = await asyncio.wait_for(exchange.receive(), DEADLINE)  # the body is still given
        return [first, await asyncio.wait_for(exchange.receive(), DEADLINE)]

    first, second = asyncio.run(main())
    assert first["type"] == "http.request" and second == {"type": "http.disconnect"}


def test_two_receivers_waiting_share_one_disconnect():
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        exchange, _ = _exchange()
        await exchange.receive()
        waiting = [loop.create_task(exchange.receive()) for _ in range(2)]
        await asyncio.sleep(0)
        await exchange.send(START)
        await exchange.send({"type": "http.response.body"})
        return [await asyncio.wait_for(w, DEADLINE) for w in waiting]

    assert asyncio.run(main()) == [{"type": "http.disconnect"}] * 2


def test_a_buffered_sink_gives_its_body_once_as_one_chunk():
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        sink = BufferedSink(loop)
        app = loop.create_future()
        empty = await sink.take(app)
        sink.start(200, [])
        sink.write(b"a")
        sink.write(b"b")
        sink.close()
        sink.close()  # twice: no waiter, no error
        sink.release()
        assert sink.streaming is False
        return [empty, await sink.take(app), await sink.take(app)]

    assert asyncio.run(main()) == [None, b"ab", None]


# -- the stream sink: its states ------------------------------------------------------------------
def test_a_stream_sink_streams_once_started_unless_held():
    async def main() -> list[bool]:
        loop = asyncio.get_running_loop()
        plain = StreamSink(loop, frozenset({500}))
        states = [plain.streaming]
        plain.start(200, [(b"a", b"1")])
        states.append(plain.streaming)
        held = StreamSink(loop, frozenset({500}))
        held.start(500, [])
        states += [held.streaming, held.held, plain.held]
        return states

    assert asyncio.run(main()) == [False, True, False, True, False]


def test_a_stream_sink_wakes_its_host_for_the_head_a_chunk_the_end_and_the_app_ending():
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        sink = StreamSink(loop, frozenset())
        app = loop.create_future()
        seen: list[Any] = []
        waiting = loop.create_task(sink.wait(app))
        await asyncio.sleep(0)
        sink.start(200, [])
        await asyncio.wait_for(waiting, DEADLINE)
        seen.append("head")
        taking = loop.create_task(sink.take(app))
        await asyncio.sleep(0)
        sink.write(b"one")
        seen.append(await asyncio.wait_for(taking, DEADLINE))
        taking = loop.create_task(sink.take(app))
        await asyncio.sleep(0)
        sink.close()
        seen.append(await asyncio.wait_for(taking, DEADLINE))
        seen.append(await asyncio.wait_for(sink.take(app), DEADLINE))  # closed: at once
        # The app's task ending wakes a host waiting for a chunk: AppEnded.
        other = StreamSink(loop, frozenset())
        other.start(200, [])
        ending = loop.create_future()
        taking = loop.create_task(other.take(ending))
        await asyncio.sleep(0)
        ending.set_result(None)
        with pytest.raises(AppEnded):
            await asyncio.wait_for(taking, DEADLINE)
        seen.append("ended")
        return seen

    assert asyncio.run(main()) == ["head", b"one", None, None, "ended"]


def test_a_queued_chunk_is_taken_before_the_end_is_noticed():
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        sink = StreamSink(loop, frozenset())
        sink.start(200, [])
        sink.write(b"a")
        sink.write(b"b")
        sink.close()
        app = loop.create_future()
        app.set_result(None)  # ended too: what is queued still comes out, in order
        return [await sink.take(app), await sink.take(app), await sink.take(app)]

    assert asyncio.run(main()) == [b"a", b"b", None]


def test_the_16th_chunk_does_not_block_and_a_take_of_one_frees_exactly_one_writer():
    async def main() -> list[bool]:
        loop = asyncio.get_running_loop()
        sink = StreamSink(loop, frozenset())
        sink.start(200, [])
        app = loop.create_future()
        for n in range(16):
            assert sink.write(b"%d" % n) is None
        room = sink.write(b"16")
        assert room is not None
        await asyncio.sleep(0.01)
        states = [room.done()]
        assert await sink.take(app) == b"0"
        await asyncio.wait_for(room, DEADLINE)
        states.append(room.done())
        # 16 queued again: the next write waits, until a take.
        room = sink.write(b"17")
        assert room is not None
        await asyncio.sleep(0.01)
        states.append(room.done())
        assert await sink.take(app) == b"1"
        await asyncio.wait_for(room, DEADLINE)
        return states

    assert asyncio.run(main()) == [False, True, False]


def test_a_last_chunk_waiting_for_room_completes_the_response_only_once_it_is_in():
    """The final ``send`` of a streamed body the host has not kept up with: first it waits for
    room, then the response is complete, then it waits for the hand-over, and only then
    returns."""

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        sink = StreamSink(loop, frozenset())
        exchange = Exchange(b"", sink, loop, head=False)
        app = loop.create_future()
        await exchange.send({"type": "http.response.start", "status": 200, "headers": []})
        for n in range(StreamSink._MAX_QUEUED):
            chunk = {"type": "http.response.body", "body": b"%d" % n, "more_body": True}
            await exchange.send(chunk)
        last = loop.create_task(exchange.send({"type": "http.response.body", "body": b"last"}))
        await asyncio.sleep(0.01)
        seen: list[Any] = [exchange.complete]  # waiting for room: not complete yet
        assert await sink.take(app) == b"0"
        await asyncio.sleep(0.01)
        seen += [exchange.complete, last.done()]  # in, complete, waiting for the hand-over
        exchange.hand_over()
        await asyncio.wait_for(last, DEADLINE)
        seen.append(last.done())
        return seen

    assert asyncio.run(main()) == [False, True, False, True]


def test_a_released_stream_sink_drops_what_was_queued():
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        sink = StreamSink(loop, frozenset({500}))
        sink.start(500, [])
        sink.write(b"queued")
        sink.release()
        sink.release()  # twice: harmless
        return sink.response().body

    assert asyncio.run(main()) == b""


# -- invocations through the host API (Adapter.begin / outcome / handed_over / drain) ------------
def _v2(path: str = "/", method: str = "GET") -> dict[str, Any]:
    return {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "example.com"},
        "requestContext": {"http": {"method": method, "sourceIp": "1.2.3.4"}, "requestId": "ev-1"},
        "isBase64Encoded": False,
    }


def _respond(status: int = 200, body: bytes = b"ok", headers: Any = ()) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})

    return app


def _through(adapter: Any, event: Any, context: Any = None, *, streaming: bool = False) -> Any:
    """begin → outcome → handed_over → drain, on the adapter's loop, under a deadline."""

    async def steps() -> Any:
        invocation = adapter.begin(event, context, streaming=streaming)
        outcome = await asyncio.wait_for(invocation.outcome(), DEADLINE)
        body = None
        if streaming and hasattr(outcome, "body"):
            body = [chunk async for chunk in outcome.body]
        invocation.handed_over()
        report = await asyncio.wait_for(invocation.drain(DEADLINE), DEADLINE)
        return invocation, outcome, body, report

    return adapter.engine.run(steps())


@pytest.mark.parametrize(
    ("context", "event", "request_id"),
    [
        (TimedContext("ctx-1"), _v2(), "ctx-1"),
        (TimedContext(""), _v2(), "ev-1"),
        (None, _v2(), "ev-1"),
        (None, {"requestContext": {"requestId": ""}, "x": 1}, "-"),
        (None, {"requestContext": "no object"}, "-"),
        (None, [1], "-"),
    ],
)
def test_the_request_id_comes_from_the_context_else_the_event_else_a_dash(
    make_adapter, context, event, request_id
):
    adapter = make_adapter(_respond())
    invocation, _, _, _ = _through(adapter, event, context)
    assert invocation.request_id == request_id


def _owing_work_on(path: str) -> Any:
    """An app answering 200 that owes after-response work on ``path`` only."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == path:
            holdfast.after_response(asyncio.sleep, 0)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_a_plain_endpoint_is_idle_after_its_response_work_is_not(make_adapter):
    adapter = make_adapter(_owing_work_on("/work"))

    async def steps(path: str) -> tuple[bool, bool, Any]:
        invocation = adapter.begin(_v2(path), None)
        await asyncio.wait_for(invocation.outcome(), DEADLINE)
        invocation.handed_over()
        await asyncio.sleep(0)
        idle = invocation.idle
        report = await asyncio.wait_for(invocation.drain(DEADLINE), DEADLINE)
        return idle, invocation.idle, report

    plain_idle, _, plain = adapter.engine.run(steps("/"))
    work_idle, after, work = adapter.engine.run(steps("/work"))
    assert plain_idle and plain.drained == 0
    assert not work_idle and after and work.drained == 1
    assert adapter.counts["drained"] == 1


def test_ready_before_the_response_and_after_it(make_adapter):
    gate = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await gate.wait()
        await send({"type": "http.response.body", "body": b"ok"})

    adapter = make_adapter(app)

    async def steps() -> list[bool]:
        states = []
        buffered = adapter.begin(_v2(), None)
        streamed = adapter.begin(_v2(), None, streaming=True)
        states.append(buffered.ready() or streamed.ready())  # the app has not run yet
        await asyncio.sleep(0.01)
        states += [buffered.ready(), streamed.ready()]  # only the stream has its head
        gate.set()
        await asyncio.wait_for(buffered.outcome(), DEADLINE)
        states.append(buffered.ready())
        for invocation in (buffered, streamed):
            invocation.handed_over()
            await asyncio.wait_for(invocation.drain(DEADLINE), DEADLINE)
        return states

    assert adapter.engine.run(steps()) == [False, False, True, True]


def _stream_failing(how: str) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        if how == "raise":
            raise LookupError("midway")
        if how == "cancel":
            raise asyncio.CancelledError
        # "return": ends without completing its response

    return app


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("raise", "midway"),
        ("cancel", "the app was cancelled during its response"),
        ("return", "the app ended without completing its response"),
    ],
)
def test_a_stream_cut_short_raises_from_its_body_with_the_reason(make_adapter, how, error):
    adapter = make_adapter(_stream_failing(how))

    async def steps() -> tuple[list[bytes], BaseException | None]:
        invocation = adapter.begin(_v2(), None, streaming=True)
        outcome = await asyncio.wait_for(invocation.outcome(), DEADLINE)
        chunks: list[bytes] = []
        caught = None
        try:
            async for chunk in outcome.body:
                chunks.append(chunk)
        except Exception as exc:
            caught = exc
        invocation.handed_over()
        await asyncio.wait_for(invocation.drain(DEADLINE), DEADLINE)
        return chunks, caught

    chunks, caught = adapter.engine.run(steps())
    assert chunks == [b"part"] and caught is not None and error in str(caught)


@pytest.mark.parametrize(
    ("how", "log"),
    [
        ("raise", "the app raised an exception"),
        ("cancel", "the app was cancelled"),
        ("return", "the app returned without a complete response"),
    ],
)
def test_an_app_ending_without_its_response_answers_500_and_logs_why(
    make_adapter, caplog, how, log
):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if how == "raise":
            raise LookupError("before the body")
        if how == "cancel":
            raise asyncio.CancelledError

    adapter = make_adapter(app)
    with caplog.at_level(logging.ERROR, "holdfast"):
        _, outcome, _, report = _through(adapter, _v2(), TimedContext("req-500"))
    assert outcome.payload["statusCode"] == 500
    assert outcome.payload["body"] == "Internal Server Error"
    assert f"request req-500: {log}" in caplog.text
    assert report.failed == 0  # the failure is the answer, not after-response work


def test_a_complete_response_when_streaming_is_one_chunk_and_headers_are_excluded(make_adapter):
    headers = [(b"x-keep", b"1"), (b"x-drop", b"2"), (b"set-cookie", b"a=1")]
    adapter = make_adapter(_respond(201, b"whole", headers), exclude_headers=["X-Drop"])
    _, streamed, body, _ = _through(adapter, _v2(), streaming=True)
    assert (streamed.status, body, streamed.cookies) == (201, [b"whole"], ["a=1"])
    assert "x-keep" in streamed.headers and "x-drop" not in streamed.headers
    _, buffered, _, _ = _through(adapter, _v2())
    assert buffered.payload["headers"].get("x-keep") == "1"
    assert "x-drop" not in buffered.payload["headers"]


def test_a_stream_excludes_headers_from_its_head(make_adapter):
    gate = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"x-keep", b"1"), (b"x-drop", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await gate.wait()
        await send({"type": "http.response.body", "body": b"x"})

    adapter = make_adapter(app, exclude_headers=["x-drop"])

    async def steps() -> Any:
        invocation = adapter.begin(_v2(), None, streaming=True)
        outcome = await asyncio.wait_for(invocation.outcome(), DEADLINE)
        gate.set()
        body = [chunk async for chunk in outcome.body]
        invocation.handed_over()
        await asyncio.wait_for(invocation.drain(DEADLINE), DEADLINE)
        return outcome, body

    outcome, body = adapter.engine.run(steps())
    assert set(outcome.headers) == {"x-keep"} and body == [b"x"]


def test_a_response_over_the_payload_limit_is_a_413_and_logged(make_adapter, caplog):
    big = b"x" * (7 * 1024 * 1024)
    adapter = make_adapter(_respond(200, big))
    with caplog.at_level(logging.ERROR, "holdfast"):
        _, outcome, _, _ = _through(adapter, _v2(), TimedContext("req-big"))
    assert outcome.payload["statusCode"] == 413
    assert outcome.payload["body"] == "Response payload too large"
    assert "request req-big: the response (status 200) exceeds the" in caplog.text
    strict = make_adapter(_respond(200, big), error_status_codes=[413])
    _, failed, _, _ = _through(strict, _v2())
    assert isinstance(failed, Failed) and failed.error_type == "HTTPError.413"


def test_an_app_failing_after_its_response_is_one_failure_counted_in_either_mode(make_adapter):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        raise LookupError("after")

    adapter = make_adapter(app)
    for streaming in (False, True):
        _, _, _, report = _through(adapter, _v2(), streaming=streaming)
        assert report.failed == 1
    assert adapter.counts["failed"] == 2
    # The sync handler: no drain follows when nothing else is owed, and it is still counted.
    assert adapter(_v2(), None)["statusCode"] == 200
    assert adapter.counts["failed"] == 3


def test_the_app_after_its_response_is_tracked_with_the_mode_in_its_failure(make_adapter, caplog):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        raise LookupError("later")

    adapter = make_adapter(app)
    with caplog.at_level(logging.ERROR, "holdfast"):
        _, _, _, buffered = _through(adapter, _v2())
        _, _, _, streamed = _through(adapter, _v2(), streaming=True)
    assert buffered.failed == streamed.failed == 1
    assert "the app raised after its response was complete" in caplog.text
    assert "the app raised during or after its streamed response" in caplog.text


@pytest.mark.parametrize("adopt", [True, False])
def test_tasks_the_app_starts_are_waited_for_only_when_adopting(make_adapter, adopt):
    finished: list[bool] = []

    async def later() -> None:
        # Many loop passes, not a timer: a slow machine cannot let it end before the drain.
        for _ in range(50):
            await asyncio.sleep(0)
        finished.append(True)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        app.task = asyncio.get_running_loop().create_task(later())  # type: ignore[attr-defined]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    adapter = make_adapter(app, adopt_tasks=adopt)
    _, _, _, report = _through(adapter, _v2())
    assert (report.drained == 1) is adopt and bool(finished) is adopt
    app.task.cancel()  # type: ignore[attr-defined]


def test_handlers_cancelled_or_raising_or_answering(make_adapter, caplog):
    adapter = make_adapter(_respond())

    @adapter.on("s3")
    async def cancelled(event: Any, context: Any) -> None:
        raise asyncio.CancelledError

    @adapter.on("sqs")
    def raising(event: Any, context: Any) -> None:
        raise KeyError("k")

    @adapter.on("sns")
    def answering(event: Any, context: Any) -> Any:
        return {"ok": event["n"]}

    with caplog.at_level(logging.ERROR, "holdfast"):
        _, s3, _, _ = _through(
            adapter, {"Records": [{"eventSource": "aws:s3"}]}, TimedContext("r1")
        )
        _, sqs, _, _ = _through(
            adapter, {"Records": [{"eventSource": "aws:sqs"}]}, TimedContext("r2")
        )
    _, sns, _, _ = _through(adapter, {"Records": [{"EventSource": "aws:sns"}], "n": 3})
    assert isinstance(s3, Failed) and "the s3 handler was cancelled" in s3.message
    assert isinstance(sqs, Failed) and sqs.error_type == "KeyError"
    assert "request r2: the sqs handler raised" in caplog.text
    assert isinstance(sns, Buffered) and sns.payload == {"ok": 3}


def test_a_pass_through_is_never_streamed_and_goes_to_the_path(make_adapter):
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b'{"done": true}'})

    adapter = make_adapter(app, pass_through_path="/events")
    _, outcome, _, _ = _through(adapter, {"order": 1}, streaming=True)
    assert isinstance(outcome, Buffered) and outcome.payload == {"done": True}
    assert seen == [("POST", "/events")]


def test_the_sync_handler_hands_the_invocation_to_a_drainer_after_the_response(make_adapter):
    adapter = make_adapter(_respond(200, b"ok"))
    given: list[Any] = []

    def drainer(invocation: Any) -> None:
        given.append(invocation)
        adapter.engine.run(invocation.drain(DEADLINE))

    adapter.drainer = drainer
    assert adapter(_v2(), TimedContext("d-1"))["body"] == "ok"
    [invocation] = given
    assert invocation.request_id == "d-1" and invocation.idle


def test_the_sync_handler_raises_a_failed_outcome(make_adapter):
    adapter = make_adapter(_respond(), error_status_codes=[502])
    with pytest.raises(holdfast.InvalidEvent):
        adapter({"httpMethod": 5, "requestContext": {}}, None)
    failing = make_adapter(_respond(502, b"bad"), error_status_codes=[502])
    with pytest.raises(Exception, match="bad") as caught:
        failing(_v2(), None)
    assert type(caught.value).__name__ == "HTTPError.502"


def test_begin_from_another_loop_is_refused(make_adapter):
    adapter = make_adapter(_respond())

    async def elsewhere() -> None:
        adapter.begin(_v2(), None)

    with pytest.raises(RuntimeError, match="adapter's own loop"):
        asyncio.run(elsewhere())


def test_predicate_handlers_come_first_in_order_then_kinds(make_adapter):
    adapter = make_adapter(_respond())
    adapter.on(lambda event: event.get("mine") == 1)(lambda event, context: "first")
    adapter.on(lambda event: "mine" in event)(lambda event, context: "second")
    adapter.on("custom")(lambda event, context: "custom")
    adapter.on("warmer")(lambda event, context: "warm")
    assert adapter({"mine": 1}, None) == "first"
    assert adapter({"mine": 2}, None) == "second"
    assert adapter({"other": 1}, None) == "custom"
    assert adapter({"warmer": True}, None) == "warm"
    with pytest.raises(ValueError, match="unknown event kind 'sqs2': expected one of sqs, sns"):
        adapter.on("sqs2")


def test_the_drain_timeout_is_the_budget_at_the_adapters_margin(make_adapter):
    adapter = make_adapter(_respond(), drain_margin=2.0)
    assert adapter.drain_timeout(TimedContext(remaining_ms=5000)) == pytest.approx(3.0)
    assert adapter.drain_timeout(None) is None


def test_record_adds_every_field_of_a_report(make_adapter):
    adapter = make_adapter(_respond())
    report = pending.DrainReport(
        drained=1, failed=2, spilled=3, cancelled=["a"], overrun=["b", "c"]
    )
    adapter.record(report)
    adapter.record(report)
    assert adapter.counts == {"drained": 2, "failed": 4, "spilled": 6, "cancelled": 2, "overrun": 4}


def test_adopting_again_keeps_the_first_description_and_an_ended_task_is_let_go():
    import gc
    import weakref

    async def main() -> tuple[pending.DrainReport, bool, Any]:
        loop = asyncio.get_running_loop()
        work = PendingWork("r", loop)
        task = loop.create_task(asyncio.Event().wait())
        work.adopt(task, lambda: "task first")
        work.adopt(task, lambda: "task second")
        quick = loop.create_task(asyncio.sleep(0))
        work.adopt(quick, lambda: "task quick")
        await quick
        await asyncio.sleep(0)
        gone = weakref.ref(quick)
        del quick
        gc.collect()
        handle = work.track(loop.create_future(), "tracked")
        report = await asyncio.wait_for(work.drain(0.01), DEADLINE)
        return report, gone() is None, handle

    report, let_go, handle = asyncio.run(main())
    assert sorted(report.cancelled) == ["task first", "tracked"]
    assert let_go  # an adopted task that ended is not held on to
    assert handle.description == "tracked" and handle.spilled_as is None


def test_a_thread_subclass_of_the_apps_is_named_by_its_run(caplog):
    gate = threading.Event()

    class Worker(threading.Thread):
        def run(self) -> None:
            gate.wait(DEADLINE)

    async def main() -> list[str]:
        work = PendingWork("r", asyncio.get_running_loop())
        Worker(name="subclassed").start()
        return work.name_threads_left()

    try:
        with caplog.at_level(logging.WARNING, "holdfast"):
            named = asyncio.run(main())
    finally:
        gate.set()
    assert named == ["subclassed"] and "in run" in caplog.text


def test_work_adopted_during_a_drain_cut_short_is_cancelled_too():
    inner: list[asyncio.Task[Any]] = []

    async def spawns(work: PendingWork) -> None:
        task = asyncio.get_running_loop().create_task(asyncio.Event().wait())
        inner.append(task)
        work.adopt(task, lambda: "task inner")
        await asyncio.Event().wait()

    async def main() -> pending.DrainReport:
        work = PendingWork("r", asyncio.get_running_loop())
        work.defer(spawns, work)
        report = await asyncio.wait_for(work.drain(0.01), DEADLINE)
        await asyncio.sleep(0)
        return report

    report = asyncio.run(main())
    assert len(report.cancelled) == 2 and "task inner" in report.cancelled
    assert inner[0].cancelled()


def test_a_shutdown_cancels_work_adopted_after_the_drain_began():
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        work = PendingWork("r", loop)
        work.defer(asyncio.Event().wait)
        drain = loop.create_task(work.drain(None))
        await asyncio.sleep(0.01)
        late = loop.create_task(asyncio.Event().wait())
        work.adopt(late, lambda: "task late")
        drain.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(drain, DEADLINE)
        await asyncio.sleep(0)
        return late.cancelled()

    assert asyncio.run(main()) is True


def test_the_drain_names_threads_left_running(caplog):
    gate = threading.Event()

    def app_thread() -> None:
        gate.wait(DEADLINE)

    async def main() -> None:
        work = PendingWork("req-t", asyncio.get_running_loop())
        threading.Thread(target=app_thread, name="left-running").start()
        work.defer(asyncio.sleep, 0)
        await asyncio.wait_for(work.drain(DEADLINE), DEADLINE)

    try:
        with caplog.at_level(logging.WARNING, "holdfast"):
            asyncio.run(main())
    finally:
        gate.set()
    assert "req-t: thread 'left-running'" in caplog.text


def test_a_fresh_buffered_sink_answers_an_empty_response():
    async def main() -> Any:
        return BufferedSink(asyncio.get_running_loop()).response()

    response = asyncio.run(main())
    assert (response.status, response.headers, response.body) == (0, [], b"")


# -- the adapter: construction, startup, closing ---------------------------------------------------
def test_exactly_one_app_is_required():
    from holdfast.adapter import Adapter

    with pytest.raises(TypeError, match="exactly one"):
        Adapter()
    with pytest.raises(TypeError, match="exactly one"):
        Adapter(_respond(), wsgi=lambda environ, start_response: [])


def test_closing_runs_the_shutdown_once_and_an_unused_adapter_makes_no_loop():
    from holdfast.adapter import Adapter

    events: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                kind = message["type"].split(".")[1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        await _respond()(scope, receive, send)

    unused = Adapter(app)
    unused.close()
    assert not unused.engine.started and events == []
    used = Adapter(app)
    assert used(_v2(), None)["statusCode"] == 200
    used.close()
    used.close()
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert not used.engine.started


def test_requests_begun_before_startup_wait_for_one_startup_and_see_its_state(make_adapter):
    starts: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await asyncio.sleep(0)
                    starts.append(1)
                    scope["state"]["ready"] = "yes"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["state"]["ready"].encode()})

    adapter = make_adapter(app)

    async def two() -> list[Any]:
        first = adapter.begin(_v2(), None)
        second = adapter.begin(_v2(), None)
        outcomes = [await asyncio.wait_for(i.outcome(), DEADLINE) for i in (first, second)]
        for invocation in (first, second):
            invocation.handed_over()
            await asyncio.wait_for(invocation.drain(DEADLINE), DEADLINE)
        return [o.payload["body"] for o in outcomes]

    assert adapter.engine.run(two()) == ["yes", "yes"]
    assert starts == [1] and adapter.started


@pytest.mark.parametrize("flush", [True, False])
def test_telemetry_flushes_are_asked_for_only_when_enabled(make_adapter, monkeypatch, flush):
    from holdfast import telemetry

    asked: list[PendingWork] = []
    monkeypatch.setattr(telemetry, "flush_in_use", asked.append)
    adapter = make_adapter(_respond(), flush_telemetry=flush)
    invocation, _, _, _ = _through(adapter, _v2())
    assert asked == ([invocation.pending] if flush else [])


def test_a_sync_final_callback_past_the_deadline_overruns_in_its_thread():
    gate = threading.Event()

    async def main() -> pending.DrainReport:
        loop = asyncio.get_running_loop()
        work = PendingWork("r", loop, margin=0.0)
        assert work.adopts is True  # by default, tasks the app starts join the work
        work.finally_(lambda: gate.wait(DEADLINE))
        return await asyncio.wait_for(work.drain(0.01), DEADLINE)

    loop = asyncio.new_event_loop()  # not asyncio.run: it would join the blocked thread
    try:
        report = loop.run_until_complete(main())
    finally:
        gate.set()
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    assert len(report.overrun) == 1 and report.cancelled == []
    assert not hasattr(report, "__dict__")  # one per invocation: slots


def test_a_fresh_stream_sink_answers_an_empty_response():
    async def main() -> Any:
        return StreamSink(asyncio.get_running_loop(), frozenset()).response()

    response = asyncio.run(main())
    assert (response.status, response.headers, response.body) == (0, [], b"")


def test_a_deferred_startup_that_fails_is_the_invocations_failure(make_adapter):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return
        await _respond()(scope, receive, send)

    adapter = make_adapter(app, lifespan="on")
    _, outcome, _, _ = _through(adapter, _v2())
    assert isinstance(outcome, Failed) and outcome.error_type == "LifespanError"
    assert "no database" in outcome.message


def test_settle_says_whether_anything_is_left_to_drain(make_adapter):
    adapter = make_adapter(_owing_work_on("/work"))
    adapter.start()
    settled = []
    for path in ("/", "/work"):
        invocation = adapter.begin(_v2(path), None)
        adapter.engine.run_until(invocation.ready)
        assert isinstance(invocation.decided(), Buffered)
        invocation.handed_over()
        settled.append(invocation.settle())
        adapter.engine.run(invocation.drain(DEADLINE))
    assert settled == [True, False]


def test_a_host_waiting_for_a_chunk_wakes_when_the_app_ends_without_one():
    async def main() -> str:
        loop = asyncio.get_running_loop()
        sink = StreamSink(loop, frozenset())
        sink.start(200, [])
        app = loop.create_future()
        taking = loop.create_task(sink.take(app))
        await asyncio.sleep(0)  # the host waits for a chunk
        app.set_result(None)  # the app's task ends: no chunk, no close
        try:
            await asyncio.wait_for(taking, DEADLINE)
        except AppEnded:
            return "app ended"
        return "no error"

    assert asyncio.run(main()) == "app ended"


def test_the_valid_response_header_name_cache_stays_bounded(monkeypatch):
    monkeypatch.setattr(bridge, "_valid_names", set())  # filled here, then the suite's again
    for number in range(1500):
        bridge._check_fields([(b"x-name-%d" % number, b"v")])
    assert len(bridge._valid_names) <= 1024
    with pytest.raises(ASGIProtocolError, match="is not an HTTP token"):
        bridge._check_fields([(b"x-name-1499", b"v"), (b"bad name", b"v")])


def test_a_refused_response_header_is_named_by_its_first_60_bytes():
    name = b"x-" + b"n" * 57 + b"q" + b"z" * 20
    with pytest.raises(ASGIProtocolError) as refused:
        bridge._check_fields([(name + b" bad", b"v")])
    assert f"the response header name {name[:60]!r} is not" in str(refused.value)
    with pytest.raises(ASGIProtocolError) as refused:
        bridge._check_fields([(name, b"a\r\nb")])
    assert f"the value of the response header {name[:60]!r} holds" in str(refused.value)


def test_durable_work_in_a_request_is_leased_past_that_invocations_deadline(
    make_adapter, context, monkeypatch
):
    monkeypatch.setattr(pending, "_writers", [])
    leases: list[float] = []

    async def release() -> None:
        return None

    def writer(fn: Any, args: Any, kwargs: Any, lease: float) -> pending.WrittenAhead:
        leases.append(lease)
        return pending.WrittenAhead("t-1", None, release)  # pending elsewhere: nothing runs

    pending.write_ahead_with(writer)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        holdfast.after_response(print, durable=True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    adapter = make_adapter(app)
    assert adapter(_v2("/"), context)["statusCode"] == 200
    assert leases == [30.0 + pending.DURABLE_LEASE_SLACK]  # the context's 30 s remaining


def test_an_event_handlers_outcome_can_be_awaited_while_it_runs(make_adapter):
    adapter = make_adapter(_respond())

    @adapter.on("custom")
    async def slow(event: Any, context: Any) -> dict[str, bool]:
        for _ in range(3):
            await asyncio.sleep(0)
        return {"ok": True}

    async def invoke() -> tuple[bool, Any]:
        invocation = adapter.begin({"order": 1}, None)
        ready_at_once = invocation.ready()
        outcome = await asyncio.wait_for(invocation.outcome(), DEADLINE)
        await invocation.drain(None)
        return ready_at_once, outcome

    ready_at_once, outcome = adapter.engine.run(invoke())
    assert not ready_at_once
    assert isinstance(outcome, Buffered) and outcome.payload == {"ok": True}


def test_a_request_no_server_accepts_is_a_400_and_the_app_never_runs(make_adapter, caplog):
    called: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope["type"])
        await _respond()(scope, receive, send)

    adapter = make_adapter(app, lifespan="off")
    event = _v2()
    event["headers"] = {"host": "example.com", "x-bad": "a\x01b"}
    with caplog.at_level(logging.WARNING, "holdfast"):
        _, outcome, _, _ = _through(adapter, event)
    assert isinstance(outcome, Buffered)
    assert outcome.payload["statusCode"] == 400
    assert outcome.payload["body"] == "Bad Request"
    assert outcome.payload["headers"]["content-type"].startswith("text/plain")
    assert called == []
    assert "answering 400" in caplog.text


def test_a_thread_left_running_is_named_when_no_work_is_owed(make_adapter, caplog):
    gate = threading.Event()
    started: list[threading.Thread] = []

    def app_thread() -> None:
        gate.wait(DEADLINE)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            thread = threading.Thread(target=app_thread, name="left-running")
            thread.start()
            started.append(thread)
        await _respond()(scope, receive, send)

    adapter = make_adapter(app, lifespan="off")
    try:
        with caplog.at_level(logging.WARNING, "holdfast"):
            _, _, _, report = _through(adapter, _v2())
    finally:
        gate.set()
        for thread in started:
            thread.join(DEADLINE)
    assert report == pending.DrainReport()
    assert "thread 'left-running'" in caplog.text and "in app_thread" in caplog.text


@pytest.mark.parametrize("asked", [None, True])
def test_the_platform_context_headers_reach_the_app_only_when_asked_for(
    make_adapter, monkeypatch, asked
):
    monkeypatch.delenv("HOLDFAST_CONTEXT_HEADERS", raising=False)
    seen: list[set[bytes]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append({name for name, _ in scope["headers"]})
        await _respond()(scope, receive, send)

    options = {} if asked is None else {"context_headers": asked}
    adapter = make_adapter(app, lifespan="off", **options)
    _through(adapter, _v2(), TimedContext("ctx-1"))
    assert (b"x-amzn-request-context" in seen[0]) is bool(asked)
    assert (b"x-amzn-lambda-context" in seen[0]) is bool(asked)


# -- the response head: the C-call check of known names, and the full conversion --------------
def _answered_with(headers: list[Any]) -> dict[str, Any]:
    from lambda_events import http_event

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    handler = holdfast.Adapter(app, lifespan="off")
    try:
        result: dict[str, Any] = handler(http_event("/"), None)
    finally:
        handler.close()
    return result


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-type", b"text/plain")],  # known: the C-call path
        [(bytearray(b"content-type"), b"text/plain")],  # unhashable: the full conversion
        [(b"content-type", memoryview(b"text/plain"))],  # known name, not a bytes value
        [(b"content-type", bytearray(b"text/plain"))],
        [[b"content-type", b"text/plain"]],  # a list for a pair
        [(b"Content-Type", b"text/plain")],  # lower-cased
    ],
    ids=["bytes", "bytearray name", "memoryview value", "bytearray value", "list", "upper"],
)
def test_every_shape_of_response_header_arrives_as_lower_cased_text(headers):
    bridge._response_head([(b"content-type", b"text/plain")])  # the name is known
    assert _answered_with(headers)["headers"] == {"content-type": "text/plain"}


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-type", b"text/plain", b"extra")],  # a known name, but not a pair
        [(b"content-type", "text/plain")],  # a str value
        [(b"content-type", b"text/plain\r\nx-injected: 1")],  # a split response
    ],
    ids=["three items", "str value", "CRLF"],
)
def test_a_response_head_that_is_no_list_of_byte_pairs_is_an_app_error(headers):
    bridge._response_head([(b"content-type", b"text/plain")])  # the name is known
    assert _answered_with(headers)["statusCode"] == 500
