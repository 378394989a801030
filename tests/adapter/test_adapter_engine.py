"""Pins on the engine: the loop made on first use only, stepping from the calling thread (the
running loop and async-generator hooks set while stepping and restored after), one pass of
``step`` never waiting, and background stepping giving way to a caller. Every wait has a
deadline, so a fault fails instead of hanging."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import pytest

from holdfast.engine import Engine, running_loop

DEADLINE = 5.0


@pytest.fixture
def engine():
    made = Engine()
    yield made
    made.close()


def test_the_loop_is_made_on_first_use_once_and_closed_once(engine):
    assert not engine.started
    engine.run_until(lambda: True)  # already done: no loop needed
    assert not engine.started
    loop = engine.loop
    assert engine.started and engine.loop is loop
    assert loop.get_task_factory() is not None  # tasks a request starts join its work
    engine.close()
    engine.close()
    assert not engine.started and loop.is_closed()


def test_a_closed_engine_never_made_a_loop():
    engine = Engine()
    engine.close()
    assert not engine.started


def test_run_returns_the_result_raises_the_error_and_leaves_no_loop_running(engine):
    hooks = sys.get_asyncgen_hooks()

    async def inside() -> Any:
        await asyncio.sleep(0)
        return running_loop(), sys.get_asyncgen_hooks().firstiter

    loop, firstiter = engine.run(inside())
    assert loop is engine.loop and firstiter is not None and firstiter != hooks.firstiter
    assert running_loop() is None and sys.get_asyncgen_hooks() == hooks

    async def fails() -> None:
        raise LookupError("inside")

    with pytest.raises(LookupError, match="inside"):
        engine.run(fails())
    assert running_loop() is None and sys.get_asyncgen_hooks() == hooks


def test_run_until_steps_until_done_and_no_further(engine):
    loop = engine.loop
    seen: list[int] = []

    def again(n: int) -> None:
        seen.append(n)
        loop.call_soon(again, n + 1)

    loop.call_soon(again, 0)
    engine.run_until(lambda: len(seen) >= 3)
    assert seen == [0, 1, 2]


def test_stepping_from_inside_a_running_loop_is_refused(engine):
    async def inside() -> None:
        engine.run_until(lambda: False)

    with pytest.raises(RuntimeError, match="from inside a running event loop"):
        asyncio.run(inside())
    assert not engine.loop.is_running()


def _bounded(target: Any) -> bool:
    """Run ``target`` in a thread; whether it returned before the deadline."""
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    return not thread.is_alive()


def test_a_step_with_nothing_ready_returns_without_waiting_for_timers(engine):
    loop = engine.loop
    loop.call_later(3600, lambda: None)
    assert _bounded(engine.step)


def test_a_step_runs_what_is_ready_once(engine):
    loop = engine.loop
    seen: list[int] = []

    def first() -> None:
        seen.append(1)
        loop.call_soon(seen.append, 2)

    loop.call_soon(first)
    engine.step()
    assert seen == [1]
    engine.step()
    assert seen == [1, 2]
    assert running_loop() is None


def test_background_stepping_gives_way_to_a_caller_and_both_finish(engine):
    loop = engine.loop
    gate = asyncio.Event()
    results: list[Any] = []

    async def background() -> str:
        await gate.wait()
        return "background"

    def in_thread() -> None:
        results.append(engine.run_in_background(background()))

    thread = threading.Thread(target=in_thread, daemon=True)
    thread.start()

    async def caller() -> str:
        await asyncio.sleep(0.01)
        gate.set()
        return "caller"

    results.append(engine.run(caller()))
    thread.join(DEADLINE)
    assert not thread.is_alive() and sorted(results) == ["background", "caller"]
    # And the background stepper alone, with no caller: it runs its coroutine to the end.
    assert _bounded(lambda: results.append(engine.run_in_background(asyncio.sleep(0, "alone"))))
    assert results[-1] == "alone" and not loop.is_running()


def test_a_caller_wakes_a_background_stepper_waiting_for_io_and_goes_first(engine):
    gate = asyncio.Event()
    stepping = threading.Event()
    results: list[Any] = []

    async def background() -> str:
        stepping.set()
        await gate.wait()  # the stepper now waits in select(), holding the loop
        return "background"

    thread = threading.Thread(
        target=lambda: results.append(engine.run_in_background(background())), daemon=True
    )
    thread.start()
    assert stepping.wait(DEADLINE)

    async def caller() -> str:
        gate.set()
        return "caller"

    assert _bounded(lambda: results.append(engine.run(caller())))
    thread.join(DEADLINE)
    assert sorted(results) == ["background", "caller"]


def test_in_debug_mode_every_callback_is_timed_by_asyncio(engine, caplog):
    import logging

    loop = engine.loop
    loop.set_debug(True)
    loop.slow_callback_duration = 0.0  # every callback is "slow": asyncio says so
    ran: list[bool] = []
    loop.call_soon(ran.append, True)
    with caplog.at_level(logging.WARNING, "asyncio"):
        engine.run_until(lambda: bool(ran))
    assert "Executing" in caplog.text
