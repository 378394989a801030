"""Pins on the core's arithmetic and edges, each a fault that would otherwise pass unnoticed or
hang: the drain budget, work added while draining, overrunning work really cancelled, a raising
after-response function, streaming backpressure and release, ``receive()`` after the body.

Every wait is bounded by a short deadline (``asyncio.wait_for``), so a fault fails the test
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from holdfast import pending
from holdfast.bridge import BufferedSink, Exchange, StreamSink
from holdfast.pending import PendingWork, drain_budget

DEADLINE = 5.0


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


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
    assert drain_budget(Context(remaining_ms), margin) == pytest.approx(budget)


def test_no_deadline_no_budget():
    assert drain_budget(None) is None
    assert drain_budget(object(), 0.5) is None
    assert drain_budget(Context(1500)) == pytest.approx(1.0)  # the default margin: 0.5 s


# -- the drain -----------------------------------------------------------------------------------
def test_work_added_while_draining_is_waited_for_too():
    order: list[str] = []

    async def second() -> None:
        await asyncio.sleep(0)
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
        await sink.start(200, [])
        for _ in range(StreamSink._MAX_QUEUED):
            await asyncio.wait_for(sink.write(b"x"), DEADLINE)  # room for 16: never waits
        writer = loop.create_task(sink.write(b"17"))
        await asyncio.sleep(0.01)
        blocked = not writer.done()
        app = loop.create_future()
        assert await asyncio.wait_for(sink.take(app), DEADLINE) == b"x"
        await asyncio.wait_for(writer, DEADLINE)
        return StreamSink._MAX_QUEUED, blocked, writer.done()

    queued, blocked, freed = asyncio.run(main())
    assert queued == 16 and blocked and freed


def test_release_frees_a_blocked_writer_and_drops_later_chunks():
    async def main() -> tuple[bool, bytes]:
        loop = asyncio.get_running_loop()
        sink = StreamSink(loop, frozenset())
        await sink.start(200, [])
        for _ in range(StreamSink._MAX_QUEUED):
            await sink.write(b"x")
        writer = loop.create_task(sink.write(b"blocked"))
        await asyncio.sleep(0.01)
        assert not writer.done()
        sink.release()
        await asyncio.wait_for(writer, DEADLINE)
        await asyncio.wait_for(sink.write(b"after"), DEADLINE)  # goes nowhere, never waits
        return writer.done(), sink.response().body

    done, body = asyncio.run(main())
    assert done and body == b""


def test_a_held_status_buffers_without_backpressure():
    async def main() -> bytes:
        sink = StreamSink(asyncio.get_running_loop(), frozenset({500}))
        await sink.start(500, [])
        for _ in range(StreamSink._MAX_QUEUED + 5):
            await asyncio.wait_for(sink.write(b"e"), DEADLINE)
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
        await sink.close()  # the response is complete
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
