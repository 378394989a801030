"""The executor, directly: every branch of prepare/conclude, the timing of async and sync
calls, the backoff arithmetic and the lease keeper. Each await has a short deadline so that a
fault which would hang fails fast instead."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time

import pytest
from waiting import eventually, eventually_async

from holdfast.tasks import InvalidArguments, TaskFailed, TaskQueue, TaskState
from holdfast.tasks.executor import (
    MAX_BACKOFF,
    Call,
    LeaseKeeper,
    conclude,
    execute,
    prepare,
    retry_delay,
    run_here,
    start,
)
from holdfast.tasks.memory import MemoryBackend
from holdfast.tasks.models import Delivery, Settlement
from holdfast.tasks.threads import ThreadRunner

DEADLINE = 5.0


def make_queue() -> TaskQueue:
    queue = TaskQueue("memory://", name="executor")

    @queue.task(name="add", retries=2, backoff=4.0)
    def add(a: int, b: int = 0) -> int:
        return a + b

    @queue.task(name="strict")
    def strict(n: int) -> int:
        return n

    return queue


def delivery(task: str = "add", *args, attempt: int = 1, **fields) -> Delivery:
    return Delivery("t1", task, list(args), {}, attempt, "token", **fields)


def bounded(coroutine):
    async def run():
        async with asyncio.timeout(DEADLINE):
            return await coroutine

    return asyncio.run(run())


# -- retry_delay ----------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_retry_delay_spans_half_to_all_of_the_exponential(monkeypatch, attempt):
    ceiling = 3.0 * 2 ** (attempt - 1)
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    assert retry_delay(3.0, attempt) == ceiling / 2
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    assert retry_delay(3.0, attempt) == ceiling


def test_retry_delay_is_capped(monkeypatch):
    assert MAX_BACKOFF == 3600
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    assert retry_delay(10.0, 40) == 3600
    assert retry_delay(3600.0, 1) == 3600
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    assert retry_delay(10.0, 40) == 1800


# -- prepare --------------------------------------------------------------------------------


def test_prepare_a_good_delivery_is_a_call():
    queue = make_queue()
    plan = prepare(queue.tasks, delivery("add", 2, attempt=3))  # the last allowed attempt
    assert isinstance(plan, Call)
    assert plan.task is queue.tasks["add"] and plan.args == (2,) and plan.kwargs == {}


def test_prepare_a_duplicate_of_a_finished_task_writes_nothing():
    plan = prepare(make_queue().tasks, delivery(settled=TaskState.SUCCEEDED))
    assert isinstance(plan, Settlement)
    assert (plan.state, plan.write, plan.counted) == (TaskState.SUCCEEDED, False, True)


def test_prepare_an_early_delivery_is_released_until_due():
    plan = prepare(make_queue().tasks, delivery(not_before=1234.5))
    assert isinstance(plan, Settlement)
    assert (plan.state, plan.run_at, plan.write) == (TaskState.QUEUED, 1234.5, False)


def test_prepare_a_corrupt_delivery_is_dead(caplog):
    with caplog.at_level(logging.ERROR, logger="holdfast.tasks"):
        plan = prepare(make_queue().tasks, delivery(error="corrupt message body: x"))
    assert isinstance(plan, Settlement)
    assert (plan.state, plan.error, plan.write, plan.counted) == (
        TaskState.DEAD,
        "corrupt message body: x",
        True,
        True,
    )
    assert "is dead: corrupt message body: x" in caplog.text


def test_prepare_an_unknown_task_is_dead():
    plan = prepare(make_queue().tasks, delivery("nope"))
    assert isinstance(plan, Settlement) and plan.state is TaskState.DEAD
    assert plan.error == "UnknownTask: no task named 'nope' is registered"


def test_prepare_past_the_last_attempt_is_dead_and_not_counted():
    plan = prepare(make_queue().tasks, delivery("add", 1, attempt=4))
    assert isinstance(plan, Settlement)
    assert (plan.state, plan.counted) == (TaskState.DEAD, False)
    assert plan.error == "WorkerLost: the worker of attempt 3 stopped"


def test_prepare_arguments_that_no_longer_fit_are_dead():
    queue = make_queue()
    plan = prepare(queue.tasks, delivery("strict", "not a number"))
    assert isinstance(plan, Settlement) and plan.state is TaskState.DEAD
    assert plan.error.startswith("InvalidArguments: argument 'n'")
    plan = prepare(queue.tasks, delivery("add"))  # a missing argument
    assert isinstance(plan, Settlement) and plan.state is TaskState.DEAD
    assert plan.error.startswith("InvalidArguments: missing a required argument")


def test_prepare_a_decoder_crash_is_dead_as_invalid_arguments():
    queue = make_queue()

    class Exploding(list):
        def __iter__(self):
            raise RecursionError("deep")

    bad = Delivery("t1", "add", Exploding([1]), {}, 1, "token")
    plan = prepare(queue.tasks, bad)
    assert isinstance(plan, Settlement) and plan.state is TaskState.DEAD
    assert plan.error == "InvalidArguments: RecursionError: deep"


# -- conclude -------------------------------------------------------------------------------


def test_conclude_success_stores_json():
    task = make_queue().tasks["add"]
    settlement = conclude(task, delivery(), {"sum": 3})
    assert (settlement.state, settlement.result, settlement.error) == (
        TaskState.SUCCEEDED,
        '{"sum":3}',
        None,
    )
    assert conclude(task, delivery(), None).result == "null"


def test_conclude_a_result_that_is_not_json_fails():
    settlement = conclude(make_queue().tasks["add"], delivery(), object())
    assert settlement.state is TaskState.FAILED
    assert settlement.error.startswith("result is not JSON: ")


def test_conclude_task_failed_is_final():
    settlement = conclude(make_queue().tasks["add"], delivery(), error=TaskFailed("no"))
    assert (settlement.state, settlement.error) == (TaskState.FAILED, "TaskFailed: no")


def test_conclude_a_failure_retries_with_backoff(monkeypatch, caplog):
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    task = make_queue().tasks["add"]  # 3 attempts, backoff 4
    before = time.time()
    with caplog.at_level(logging.WARNING, logger="holdfast.tasks"):
        settlement = conclude(task, delivery(attempt=2), error=ValueError("x"))
    after = time.time()
    assert "task t1 (add) attempt 2 failed, retrying in 8.0s" in caplog.text
    assert (settlement.state, settlement.error) == (TaskState.RETRYING, "ValueError: x")
    assert before + 8.0 <= settlement.run_at <= after + 8.0  # 4 * 2**(2-1)


def test_conclude_the_last_attempts_failure_is_dead(caplog):
    task = make_queue().tasks["add"]
    with caplog.at_level(logging.ERROR, logger="holdfast.tasks"):
        settlement = conclude(task, delivery(attempt=3), error=ValueError("x"))
    assert (settlement.state, settlement.error, settlement.run_at) == (
        TaskState.DEAD,
        "ValueError: x",
        None,
    )
    assert "failed its last attempt" in caplog.text


# -- start: async and sync calls under their timeouts -------------------------------------------


def started(call: Call, d: Delivery, threads: ThreadRunner):
    """Start `call`; the settlements `done` received, once the first arrived."""

    async def main():
        seen: list[Settlement | None] = []
        arrived = asyncio.Event()

        def done(settlement):
            seen.append(settlement)
            arrived.set()

        coroutine = start(call, d, threads, done)
        await arrived.wait()
        if coroutine is not None:
            await coroutine
        return coroutine, seen

    return bounded(main())


def test_start_an_async_task_on_the_loop():
    queue = TaskQueue("memory://", name="a")

    @queue.task(name="double")
    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return 2 * n

    coroutine, seen = started(Call(double, (4,), {}), delivery("double"), ThreadRunner())
    assert isinstance(coroutine, asyncio.Task)
    assert [(s.state, s.result) for s in seen] == [(TaskState.SUCCEEDED, "8")]


def test_start_an_async_task_that_raises():
    queue = TaskQueue("memory://", name="a")

    @queue.task(name="boom", retries=0)
    async def boom() -> None:
        raise KeyError("k")

    _, seen = started(Call(boom, (), {}), delivery("boom"), ThreadRunner())
    assert [(s.state, s.error) for s in seen] == [(TaskState.DEAD, "KeyError: 'k'")]


def test_start_an_async_task_past_its_timeout():
    queue = TaskQueue("memory://", name="a")

    @queue.task(name="slow", retries=0, timeout=0.05)
    async def slow() -> None:
        await asyncio.Event().wait()  # forever

    _, seen = started(Call(slow, (), {}), delivery("slow"), ThreadRunner())
    assert [(s.state, s.error) for s in seen] == [
        (TaskState.DEAD, "TaskTimeout: attempt exceeded 0.05s")
    ]


def test_an_untimed_async_tasks_own_timeout_error_is_its_failure():
    queue = TaskQueue("memory://", name="a")

    @queue.task(name="own", retries=0)
    async def own() -> None:
        raise TimeoutError("upstream")

    _, seen = started(Call(own, (), {}), delivery("own"), ThreadRunner())
    assert [(s.state, s.error) for s in seen] == [(TaskState.DEAD, "TimeoutError: upstream")]


def test_start_an_async_task_within_its_timeout():
    queue = TaskQueue("memory://", name="a")

    @queue.task(name="quick", timeout=30)
    async def quick() -> str:
        return "ok"

    _, seen = started(Call(quick, (), {}), delivery("quick"), ThreadRunner())
    assert [(s.state, s.result) for s in seen] == [(TaskState.SUCCEEDED, '"ok"')]


def waits_forever():
    """A queue whose task "forever" waits until cancelled, and the event it sets on entry."""
    queue = TaskQueue("memory://", name="a")
    entered = asyncio.Event()

    @queue.task(name="forever")
    async def forever() -> None:
        entered.set()
        await asyncio.Event().wait()

    return queue, entered


def test_a_cancelled_async_task_is_abandoned():
    queue, entered = waits_forever()
    forever = queue.tasks["forever"]

    async def main():
        seen = []
        coroutine = start(Call(forever, (), {}), delivery("forever"), ThreadRunner(), seen.append)
        await entered.wait()
        coroutine.cancel()
        with pytest.raises(asyncio.CancelledError):
            await coroutine
        return seen

    assert bounded(main()) == [None]


def test_start_a_sync_task_on_a_thread():
    queue = TaskQueue("memory://", name="a")
    loop_thread = threading.get_ident()

    @queue.task(name="where")
    def where() -> bool:
        return threading.get_ident() != loop_thread

    threads = ThreadRunner()
    coroutine, seen = started(Call(where, (), {}), delivery("where"), threads)
    threads.shutdown()
    assert coroutine is None
    assert [(s.state, s.result) for s in seen] == [(TaskState.SUCCEEDED, "true")]


def test_a_sync_task_past_its_timeout_is_settled_once_and_its_late_result_dropped():
    queue = TaskQueue("memory://", name="a")
    release = threading.Event()
    returned = threading.Event()

    @queue.task(name="stuck", retries=0, timeout=0.05)
    def stuck() -> str:
        release.wait(DEADLINE)
        returned.set()
        return "late"

    async def main():
        seen = []
        threads = ThreadRunner()
        start(Call(stuck, (), {}), delivery("stuck"), threads, seen.append)
        await eventually_async(lambda: seen, "the timeout settles the task", DEADLINE)
        release.set()
        await eventually_async(returned.is_set, "the thread returns", DEADLINE)
        await asyncio.sleep(0)  # the thread's late completion reaches the loop
        await eventually_async(lambda: not threads._done, "the late result is handed back")
        threads.shutdown()
        return seen

    seen = bounded(main())
    assert [(s.state, s.error) for s in seen] == [
        (TaskState.DEAD, "TaskTimeout: attempt exceeded 0.05s")
    ]


def test_a_sync_task_within_its_timeout_is_settled_once():
    queue = TaskQueue("memory://", name="a")

    @queue.task(name="fine", timeout=0.2)
    def fine() -> int:
        return 1

    async def main():
        seen = []
        threads = ThreadRunner()
        start(Call(fine, (), {}), delivery("fine"), threads, seen.append)
        await eventually_async(lambda: seen, "the task is settled", DEADLINE)
        # Past the timeout: the cancelled timer must not settle it a second time.
        await asyncio.sleep(0.3)
        threads.shutdown()
        return seen

    assert [(s.state, s.result) for s in bounded(main())] == [(TaskState.SUCCEEDED, "1")]


def test_a_sync_task_raising_system_exit_fails_on_a_thread_and_here():
    queue = TaskQueue("memory://", name="a")

    @queue.task(name="exits", retries=0)
    def exits() -> None:
        raise SystemExit(3)

    _, seen = started(Call(exits, (), {}), delivery("exits"), ThreadRunner())
    assert [(s.state, s.error) for s in seen] == [(TaskState.DEAD, "SystemExit: 3")]
    settlement = run_here(Call(exits, (), {}), delivery("exits"))
    assert (settlement.state, settlement.error) == (TaskState.DEAD, "SystemExit: 3")


def test_run_here_runs_on_the_calling_thread():
    queue = make_queue()
    settlement = run_here(Call(queue.tasks["add"], (2, 3), {}), delivery())
    assert (settlement.state, settlement.result) == (TaskState.SUCCEEDED, "5")
    failed = run_here(Call(queue.tasks["add"], ("x",), {"b": 1}), delivery())
    assert (failed.state, failed.error) == (
        TaskState.RETRYING,
        'TypeError: can only concatenate str (not "int") to str',
    )


# -- execute --------------------------------------------------------------------------------


def test_execute_runs_sync_and_async_tasks_and_short_circuits_the_rest():
    queue = make_queue()

    @queue.task(name="hello")
    async def hello(name: str) -> str:
        return f"hi {name}"

    assert bounded(execute(queue.tasks, delivery("add", 2, 5))).result == "7"
    assert bounded(execute(queue.tasks, delivery("hello", "x"))).result == '"hi x"'
    threads = ThreadRunner()
    assert bounded(execute(queue.tasks, delivery("add", 1), threads=threads)).result == "1"
    assert bounded(execute(queue.tasks, delivery("add", 2), threads=threads)).result == "2"
    threads.shutdown()
    dead = bounded(execute(queue.tasks, delivery("missing")))
    assert dead.state is TaskState.DEAD and dead.error.startswith("UnknownTask")


def test_execute_shuts_down_the_pool_it_made():
    queue = make_queue()

    def task_threads() -> int:
        return sum(t.name == "holdfast-task" and t.is_alive() for t in threading.enumerate())

    before = task_threads()
    assert bounded(execute(queue.tasks, delivery("add", 2, 5))).result == "7"
    # The pool's thread exits once told to (it was not waited for).
    eventually(lambda: task_threads() <= before, "the pool's thread exits", DEADLINE)


def test_execute_ends_the_thread_of_the_pool_it_made():
    queue = TaskQueue("memory://", name="executor-own-pool")
    ran_on: list[threading.Thread] = []

    @queue.task(name="where")
    def where() -> None:
        ran_on.append(threading.current_thread())

    assert bounded(execute(queue.tasks, delivery("where"))).result == "null"
    # That very thread exits (other tests' pool threads may come and go meanwhile).
    ran_on[0].join(DEADLINE)
    assert not ran_on[0].is_alive()


def test_execute_cancelled_from_outside_cancels_the_task():
    queue = TaskQueue("memory://", name="a")
    entered, cancelled = asyncio.Event(), []

    @queue.task(name="forever")
    async def forever() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        running = asyncio.create_task(execute(queue.tasks, delivery("forever")))
        await entered.wait()
        inner = asyncio.all_tasks() - {running, asyncio.current_task()}
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await eventually_async(lambda: cancelled, "the task itself is cancelled", DEADLINE)
        # The task's coroutine ends cancelled too, not with an error of its own.
        ended = await asyncio.gather(*inner, return_exceptions=True)
        assert [type(e) for e in ended] == [asyncio.CancelledError]

    bounded(main())
    assert cancelled == [True]


def test_execute_raises_when_its_coroutine_is_cancelled_by_someone_else():
    queue, entered = waits_forever()

    async def main():
        running = asyncio.create_task(execute(queue.tasks, delivery("forever")))
        await entered.wait()
        for task in asyncio.all_tasks():  # the task's own coroutine, not execute()
            if task is not running and task is not asyncio.current_task():
                task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    bounded(main())


def test_invalid_arguments_at_defer_never_reach_the_executor():
    with pytest.raises(InvalidArguments):
        make_queue().tasks["strict"].defer_sync("x")


# -- LeaseKeeper ----------------------------------------------------------------------------


def test_the_keeper_renews_running_deliveries_until_discarded():
    backend = MemoryBackend(queue="lease")
    queue = TaskQueue(backend, name="lease", register=False)
    queue.task(name="job")(lambda: None)
    kept, dropped = queue.enqueue_sync("job"), queue.enqueue_sync("job")
    first, second = backend.claim(2, 0.3)
    record = backend._records

    async def main():
        keeper = LeaseKeeper(queue.async_backend, 0.3)
        keeper.add(first)
        keeper.add(second)
        keeper.discard(second)
        renewing = asyncio.create_task(keeper.run())
        start_until = record[first.id].lease_until
        await eventually_async(
            lambda: record[first.id].lease_until > start_until + 0.1, "a renewal", DEADLINE
        )
        renewing.cancel()

    bounded(main())
    assert record[second.id].lease_until < record[first.id].lease_until
    assert {kept.id, dropped.id} == {first.id, second.id}


def test_the_keeper_survives_a_failing_backend(caplog):
    class Failing(MemoryBackend):
        calls = 0

        def extend(self, deliveries, lease):
            Failing.calls += 1
            raise OSError("throttled")

    queue = TaskQueue(Failing(queue="f"), name="f", register=False)
    keeper = LeaseKeeper(queue.async_backend, 0.06)
    keeper.add(delivery())

    async def main():
        await keeper.renew([])  # nothing to renew: no call
        assert Failing.calls == 0
        renewing = asyncio.create_task(keeper.run())
        await eventually_async(lambda: Failing.calls >= 2, "renewals go on", DEADLINE)
        renewing.cancel()

    with caplog.at_level(logging.ERROR, logger="holdfast.tasks"):
        bounded(main())
    assert "could not renew the lease of 1 task(s)" in caplog.text


def test_the_keeper_renews_every_third_of_the_lease(monkeypatch):
    class Stop(Exception):
        pass

    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)
        if len(waits) == 2:
            raise Stop  # two rounds seen: enough

    queue = TaskQueue(MemoryBackend(queue="third"), name="third", register=False)
    keeper = LeaseKeeper(queue.async_backend, 30.0)
    monkeypatch.setattr(asyncio, "sleep", sleep)
    with pytest.raises(Stop):
        bounded(keeper.run())
    assert waits == [10.0, 10.0]
