"""The worker: retries, dead letters, timeouts, bad input, leases, stopping, wake-ups."""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import threading

import pytest
from waiting import eventually, eventually_async

from holdfast.tasks import TaskFailed, TaskQueue, TaskState
from holdfast.tasks.executor import retry_delay


def drain(queue: TaskQueue, **options) -> None:
    asyncio.run(queue.worker(**options).run(burst=True))


def echo(n: int) -> int:
    return n


def echo_queue(url: str, **task_options) -> TaskQueue:
    """A queue with one task, "echo", that returns its int argument."""
    queue = TaskQueue(url)
    queue.task(name="echo", **task_options)(echo)
    return queue


def test_retries_then_succeeds(any_url):
    queue = TaskQueue(any_url)
    calls = []

    @queue.task(retries=3, backoff=0)
    def flaky(n: int) -> int:
        calls.append(n)
        if len(calls) < 3:
            raise ConnectionError(f"try {len(calls)}")
        return n

    handle = flaky.defer_sync(7)
    drain(queue)
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.SUCCEEDED and status.result == 7
    assert status.attempts == 3 and calls == [7, 7, 7]
    assert status.error is None


def test_dead_after_the_last_attempt(any_url):
    queue = TaskQueue(any_url)

    @queue.task(retries=2, backoff=0)
    async def always_fails() -> None:
        raise ValueError("broken\nsecond line")

    handle = always_fails.defer_sync()
    drain(queue)
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.DEAD and status.attempts == 3
    assert status.error == "ValueError: broken\nsecond line"
    assert "Traceback" not in status.error and status.finished_at is not None


def test_retry_waits_for_its_backoff(any_url):
    queue = TaskQueue(any_url)

    @queue.task(retries=1, backoff=100)
    def fails_once() -> None:
        raise RuntimeError("later")

    handle = fails_once.defer_sync()
    drain(queue)  # burst mode: the retry is not due yet
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.RETRYING and status.attempts == 1
    assert status.error == "RuntimeError: later"
    wait = (status.run_at - status.started_at).total_seconds()
    assert 50 <= wait <= 101  # backoff * 2**0, jittered down to half at most


def test_backoff_is_exponential_with_jitter():
    for attempt in range(1, 8):
        ceiling = 2.0 * 2 ** (attempt - 1)
        delays = [retry_delay(2.0, attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
    assert retry_delay(10.0, 40) <= 3600


def test_task_failed_is_final_without_retry(any_url):
    queue = TaskQueue(any_url)
    calls = []

    @queue.task(retries=5)
    def reject(order: str) -> None:
        calls.append(order)
        raise TaskFailed(f"order {order} was cancelled")

    handle = reject.defer_sync("A1")
    drain(queue)
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.FAILED and status.attempts == 1 and calls == ["A1"]
    assert status.error == "TaskFailed: order A1 was cancelled"


def test_unserialisable_result_fails_the_task(any_url):
    queue = TaskQueue(any_url)

    @queue.task
    def returns_object() -> object:
        return object()

    handle = returns_object.defer_sync()
    drain(queue)
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.FAILED and "result is not JSON" in status.error


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_timeout_is_enforced(any_url, kind):
    queue = TaskQueue(any_url)
    release = threading.Event()

    if kind == "async":

        @queue.task(name="slow", timeout=0.05, retries=1, backoff=0)
        async def slow() -> None:
            await asyncio.sleep(3600)

    else:

        @queue.task(name="slow", timeout=0.05, retries=1, backoff=0)
        def slow() -> None:
            release.wait(60)  # a thread cannot be killed; let it go at the end

    handle = slow.defer_sync()
    try:
        drain(queue)
    finally:
        release.set()
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.DEAD and status.attempts == 2
    assert status.error == "TaskTimeout: attempt exceeded 0.05s"


def test_unknown_task_goes_dead_without_blocking_the_rest(any_url):
    queue = echo_queue(any_url)
    first = queue.enqueue_sync("echo", [1])
    unknown = queue.enqueue_sync("no.such.task", [1, 2])
    last = queue.enqueue_sync("echo", [2])
    drain(queue, concurrency=1)
    status = queue.status_sync(unknown.id)
    assert status.state is TaskState.DEAD and status.attempts == 1
    assert "UnknownTask" in status.error and "no.such.task" in status.error
    assert queue.status_sync(first.id).result == 1
    assert queue.status_sync(last.id).result == 2


def test_stored_arguments_that_no_longer_fit_go_dead(any_url):
    queue = echo_queue(any_url, retries=5)
    handle = queue.enqueue_sync("other-name", ["x"])  # not validated: unknown here
    queue._tasks["other-name"] = queue._tasks["echo"]  # now it meets the int hint
    drain(queue)
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.DEAD and status.attempts == 1
    assert status.error.startswith("InvalidArguments: argument 'n'")


def test_corrupt_payload_goes_dead(sqlite_url):
    queue = echo_queue(sqlite_url)
    broken = queue.enqueue_sync("echo", [1])
    good = queue.enqueue_sync("echo", [2])
    with sqlite3.connect(queue.backend.path) as conn:
        conn.execute("UPDATE holdfast_tasks SET payload = '{not json' WHERE seq = 1")
    drain(queue)
    status = queue.status_sync(broken.id)
    assert status.state is TaskState.DEAD and status.error.startswith("CorruptRecord: payload: ")
    assert queue.status_sync(good.id).result == 2


def test_concurrency_bounds_running_tasks(any_url):
    queue = TaskQueue(any_url)
    running, peak = 0, 0

    @queue.task
    async def track() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    for _ in range(20):
        track.defer_sync()
    drain(queue, concurrency=3)
    assert peak == 3
    assert len(queue.list_sync(state="succeeded")) == 20


def test_sync_tasks_run_in_threads_with_the_context(any_url):
    queue = TaskQueue(any_url)
    request_id = contextvars.ContextVar("request_id", default="unset")
    loop_thread = threading.get_ident()

    @queue.task
    def where() -> list:
        return [threading.get_ident() != loop_thread, request_id.get()]

    handle = where.defer_sync()
    request_id.set("r-1")  # the worker's context, copied into the task's thread
    drain(queue)
    assert queue.status_sync(handle.id).result == [True, "r-1"]


def test_long_task_keeps_its_lease(sqlite_url):
    # Lease 2 s, task 3 s, two workers: renewals (every third of the lease) keep the other
    # worker off it. (A shorter lease makes the test depend on the machine's load: the suite
    # runs on several xdist workers.)
    queue = TaskQueue(sqlite_url, visibility_timeout=2.0)
    runs = []

    @queue.task(name="long")
    async def long() -> str:
        runs.append(1)
        await asyncio.sleep(3.0)
        return "done"

    async def main():
        handle = await long.defer()
        workers = [queue.worker(), queue.worker()]
        running = [asyncio.create_task(w.run()) for w in workers]
        status = await handle.wait(timeout=60)
        for w in workers:
            w.stop()
        await asyncio.gather(*running)
        return status

    status = asyncio.run(main())
    assert status.state is TaskState.SUCCEEDED and status.attempts == 1 and runs == [1]


def recovered(queue: TaskQueue, task_id: str):
    """The task's status once maintenance found its lease lapsed, else None."""
    queue.backend.maintain()
    status = queue.status_sync(task_id)
    return None if status.state is TaskState.RUNNING else status


def test_expired_lease_is_claimed_again(any_url):
    # A worker that claimed and vanished: its task comes back once the lease lapses.
    queue = TaskQueue(any_url, visibility_timeout=0.2)

    @queue.task(name="job")
    def job() -> str:
        return "second time lucky"

    handle = job.defer_sync()
    lost = queue.backend.claim(1, 0.2)
    assert [d.id for d in lost] == [handle.id]
    assert queue.backend.claim(1, 0.2) == []  # still leased
    eventually(lambda: recovered(queue, handle.id), "the lapsed lease is recovered")
    assert queue.status_sync(handle.id).error.startswith("WorkerLost")
    drain(queue)
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.SUCCEEDED and status.attempts == 2
    # The vanished worker's late settlement is ignored: its lease is gone.
    from holdfast.tasks.models import Settlement

    queue.backend.settle([Settlement(lost[0], TaskState.DEAD, error="late")])
    assert queue.status_sync(handle.id).state is TaskState.SUCCEEDED


def test_lost_attempts_count_towards_the_limit(any_url):
    queue = TaskQueue(any_url, visibility_timeout=0.05)

    @queue.task(name="crashy", retries=1)
    def crashy() -> None:
        pass

    handle = crashy.defer_sync()
    for _ in range(2):  # two workers die mid-task
        assert queue.backend.claim(1, 0.05)
        eventually(lambda: recovered(queue, handle.id), "the lapsed lease is recovered")
    drain(queue)
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.DEAD and status.attempts == 2  # never past the maximum
    assert status.error == "WorkerLost: the worker of attempt 2 stopped"


def test_stop_lets_running_tasks_finish(any_url):
    queue = TaskQueue(any_url)
    started = asyncio.Event()

    @queue.task(name="wind_down")
    async def wind_down() -> str:
        started.set()
        await asyncio.sleep(0.2)
        return "finished"

    async def main():
        handle = await wind_down.defer()
        waiting = wind_down.options(delay=3600).defer_sync()
        worker = queue.worker()
        running = asyncio.create_task(worker.run())
        await started.wait()
        worker.stop()
        await running
        return await handle.status(), await waiting.status()

    finished, waiting = asyncio.run(main())
    assert finished.state is TaskState.SUCCEEDED and finished.result == "finished"
    assert waiting.state is TaskState.QUEUED


def test_forced_stop_cancels_and_the_task_comes_back(sqlite_url):
    queue = TaskQueue(sqlite_url, visibility_timeout=0.2)
    started = asyncio.Event()

    @queue.task(name="interrupted")
    async def interrupted() -> None:
        started.set()
        await asyncio.sleep(3600)

    async def main():
        handle = await interrupted.defer()
        worker = queue.worker()
        running = asyncio.create_task(worker.run())
        await started.wait()
        worker.stop(force=True)
        await running
        return await handle.status()

    status = asyncio.run(main())
    assert status.state is TaskState.RUNNING  # nothing recorded: the lease will lapse
    recovered_status = eventually(lambda: recovered(queue, status.id), "the lease lapses")
    assert recovered_status.state is TaskState.RETRYING


def test_same_process_defer_wakes_an_idle_worker(any_url):
    # With an hour-long poll interval only the in-process notification can wake the worker.
    queue = TaskQueue(any_url)

    @queue.task(name="ping")
    async def ping() -> str:
        return "pong"

    async def main():
        worker = queue.worker(poll_interval=3600)
        running = asyncio.create_task(worker.run())
        await asyncio.sleep(0.05)  # let it go idle
        statuses = []
        for _ in range(3):
            handle = await ping.defer()
            statuses.append(await handle.wait(timeout=60))
        from_thread = await asyncio.to_thread(ping.defer_sync)
        statuses.append(await from_thread.wait(timeout=60))
        worker.stop()
        await running
        return statuses

    assert [s.result for s in asyncio.run(main())] == ["pong"] * 4


def test_worker_survives_backend_errors(any_url, caplog):
    queue = TaskQueue(any_url)

    @queue.task(name="fine")
    def fine() -> str:
        return "ok"

    # SQLite claims through settle_and_claim() (one transaction), memory via claim().
    method = "settle_and_claim" if hasattr(queue.backend, "settle_and_claim") else "claim"
    original, failures = getattr(queue.backend, method), [RuntimeError("database is on fire")]

    def flaky(*args):
        if failures:
            raise failures.pop()
        return original(*args)

    setattr(queue.backend, method, flaky)
    handle = fine.defer_sync()
    drain(queue)
    assert queue.status_sync(handle.id).result == "ok"
    assert "task backend call failed" in caplog.text


def test_system_exit_in_a_sync_task_is_a_failure(any_url):
    queue = TaskQueue(any_url)

    @queue.task(name="quits", retries=0)
    def quits() -> None:
        raise SystemExit(3)

    handle = quits.defer_sync()
    drain(queue)
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.DEAD and status.error == "SystemExit: 3"


def test_a_hung_sync_task_does_not_hold_up_the_next(any_url):
    # The timed-out task keeps its thread; the next one must get a thread of its own.
    queue = TaskQueue(any_url)
    release = threading.Event()

    @queue.task(name="hangs", timeout=0.05, retries=0)
    def hangs() -> None:
        release.wait(60)

    @queue.task(name="quick")
    def quick() -> str:
        return "quick"

    stuck = hangs.defer_sync()
    after = quick.defer_sync()
    try:
        drain(queue, concurrency=1)
    finally:
        release.set()
    assert queue.status_sync(stuck.id).state is TaskState.DEAD
    assert queue.status_sync(after.id).result == "quick"


def test_sync_tasks_chained_on_a_thread_hand_over_to_the_loop(sqlite_url):
    # Untimed sync tasks run back to back on their thread; an async or a timed task that the
    # chain claims is started by the loop instead. All of them run, once each, in order.
    queue = TaskQueue(sqlite_url)
    ran = []

    @queue.task(name="plain")
    def plain(n: int) -> int:
        ran.append(("plain", n, threading.current_thread() is threading.main_thread()))
        return n

    @queue.task(name="timed", timeout=30)
    def timed(n: int) -> int:
        ran.append(("timed", n, threading.current_thread() is threading.main_thread()))
        return n

    @queue.task(name="coro")
    async def coro(n: int) -> int:
        ran.append(("coro", n, threading.current_thread() is threading.main_thread()))
        return n

    kinds = ["plain", "plain", "coro", "plain", "timed", "plain", "plain", "coro", "timed"]
    handles = [queue.enqueue_sync(kind, [n]) for n, kind in enumerate(kinds)]
    drain(queue, concurrency=1)
    assert [(kind, n) for kind, n, _ in ran] == list(zip(kinds, range(len(kinds)), strict=True))
    assert all(on_main == (kind == "coro") for kind, _, on_main in ran)
    for n, handle in enumerate(handles):
        status = queue.status_sync(handle.id)
        assert (status.state, status.result, status.attempts) == (TaskState.SUCCEEDED, n, 1)


def test_sync_tasks_keep_the_concurrency_bound(sqlite_url):
    queue = TaskQueue(sqlite_url)
    lock, running, peak = threading.Lock(), [0], [0]

    @queue.task(name="track")
    def track() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        threading.Event().wait(0.002)  # overlap with the other slot's task
        with lock:
            running[0] -= 1

    for _ in range(40):
        track.defer_sync()
    drain(queue, concurrency=2)
    assert peak[0] == 2
    assert len(queue.list_sync(state="succeeded", limit=100)) == 40


def test_stop_ends_a_chain_after_its_running_task(sqlite_url):
    queue = TaskQueue(sqlite_url)
    entered, release = threading.Event(), threading.Event()

    @queue.task(name="first")
    def first() -> str:
        entered.set()
        release.wait(30)
        return "finished"

    @queue.task(name="later")
    def later() -> str:
        return "must not run"

    async def main():
        handle = await first.defer()
        waiting = [await later.defer() for _ in range(3)]
        worker = queue.worker(concurrency=1)
        running = asyncio.create_task(worker.run())
        await eventually_async(entered.is_set, "the first task runs", 30)
        worker.stop()
        release.set()
        async with asyncio.timeout(30):
            await running
        return await handle.status(), [await h.status() for h in waiting]

    finished, waiting = asyncio.run(main())
    assert finished.state is TaskState.SUCCEEDED and finished.result == "finished"
    assert [s.state for s in waiting] == [TaskState.QUEUED] * 3
