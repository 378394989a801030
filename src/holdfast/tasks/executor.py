"""Running one delivery: find the task, call it under its timeout, turn what happened into a
Settlement. The one place a delivery runs, for the local worker and the Lambda consumer alike,
so both time, retry and fail alike.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .backend import AsyncBackend
from .codec import encode_result
from .errors import InvalidArguments, TaskFailed, TaskTimeout, error_text
from .models import Delivery, Settlement, TaskState
from .task import Task
from .threads import ThreadRunner

logger = logging.getLogger("holdfast.tasks")

#: Longest wait between two attempts, whatever the backoff (SQS caps visibility at 12 h).
MAX_BACKOFF = 3600.0


def retry_delay(backoff: float, attempt: int) -> float:
    """Exponential backoff with jitter: about `backoff * 2**(attempt-1)`, never less than half."""
    ceiling = min(backoff * 2.0 ** (attempt - 1), MAX_BACKOFF)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _dead(delivery: Delivery, error: str, *, counted: bool = True) -> Settlement:
    logger.error("task %s (%s) is dead: %s", delivery.id, delivery.task, error)
    return Settlement(delivery, TaskState.DEAD, error=error, counted=counted)


@dataclass(frozen=True, slots=True)
class Call:
    """A delivery that passed every check: the task and its call-ready arguments."""

    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def prepare(tasks: Mapping[str, Task[Any, Any]], delivery: Delivery) -> Call | Settlement:
    """The call to make for `delivery`, or at once its settlement when it must not run."""
    if delivery.settled is not None:  # a duplicate of a task that already finished
        return Settlement(delivery, delivery.settled, write=False)
    if delivery.not_before is not None:  # released until its delay is over
        return Settlement(delivery, TaskState.QUEUED, run_at=delivery.not_before, write=False)
    if delivery.error is not None:
        return _dead(delivery, delivery.error)
    task = tasks.get(delivery.task)
    if task is None:
        return _dead(delivery, f"UnknownTask: no task named {delivery.task!r} is registered")
    if delivery.attempt > task.max_attempts:
        # This delivery never runs, so it is no attempt: the count stays at the maximum.
        lost = f"WorkerLost: the worker of attempt {task.max_attempts} stopped"
        return _dead(delivery, lost, counted=False)
    try:
        args, kwargs = task.codec.decode(delivery.args, delivery.kwargs)
    except InvalidArguments as exc:
        return _dead(delivery, error_text(exc))
    except Exception as exc:  # RecursionError on absurd nesting, a validator's own bug...
        return _dead(delivery, f"InvalidArguments: {error_text(exc)}")
    return Call(task, args, kwargs)


def conclude(
    task: Task[Any, Any], delivery: Delivery, value: Any = None, error: BaseException | None = None
) -> Settlement:
    """The settlement of an attempt that returned `value` or raised `error`."""
    if isinstance(error, TaskFailed):
        return Settlement(delivery, TaskState.FAILED, error=error_text(error))
    if error is not None:  # SystemExit from a sync task's thread counts as a failure too
        return _failure(task, delivery, error)
    try:
        return Settlement(delivery, TaskState.SUCCEEDED, result=encode_result(value))
    except Exception as exc:  # TypeError, ValueError, RecursionError: never a stalled worker
        return Settlement(
            delivery, TaskState.FAILED, error=f"result is not JSON: {error_text(exc)}"
        )


#: Called on the event loop once a started delivery ends: with its settlement, or with None
#: when it was abandoned (a forced stop cancelled it; its lease lapses and it runs again).
Done = Callable[[Settlement | None], None]


def start(
    call: Call, delivery: Delivery, threads: ThreadRunner, done: Done
) -> asyncio.Task[None] | None:
    """Start the call under the task's timeout: an async task as a coroutine on this loop (the
    asyncio.Task is returned, to be cancelled on a forced stop), a sync one on `threads`.

    `done` is called exactly once. A sync task that overruns its timeout is settled as timed
    out at once; its thread cannot be stopped, and its late result is dropped.
    """
    if call.task.is_async:
        return asyncio.create_task(_run_coroutine(call, delivery, done))
    _start_in_thread(call, delivery, threads, done)
    return None


async def _run_coroutine(call: Call, delivery: Delivery, done: Done) -> None:
    try:
        value = await _timed(call)
    except asyncio.CancelledError:
        done(None)
        raise
    except Exception as exc:
        done(conclude(call.task, delivery, error=exc))
    else:
        done(conclude(call.task, delivery, value))


async def _timed(call: Call) -> Any:
    task = call.task
    if task.timeout is None:
        return await task.fn(*call.args, **call.kwargs)
    try:
        async with asyncio.timeout(task.timeout):
            return await task.fn(*call.args, **call.kwargs)
    except TimeoutError:
        raise timeout_error(task) from None


def _start_in_thread(call: Call, delivery: Delivery, threads: ThreadRunner, done: Done) -> None:
    # No coroutine per sync task: the thread's completion callback (or the timer) concludes it.
    finished = False

    def conclude_once(value: Any, error: BaseException | None) -> None:
        nonlocal finished
        if finished:  # the timeout concluded it already; the late result is dropped
            return
        finished = True
        if timer is not None:
            timer.cancel()
        done(conclude(call.task, delivery, value, error))

    timeout, timer = call.task.timeout, None
    if timeout is not None:
        loop = asyncio.get_running_loop()
        timer = loop.call_later(timeout, conclude_once, None, timeout_error(call.task))
    threads.submit(call.task.fn, call.args, call.kwargs, conclude_once)


def run_here(call: Call, delivery: Delivery) -> Settlement:
    """Make a sync call on this thread, untimed: for a thread that already belongs to the
    delivery (the worker chains untimed sync tasks on one thread)."""
    try:
        value = call.task.fn(*call.args, **call.kwargs)
    except BaseException as exc:  # SystemExit from a sync task fails it, as on a pool thread
        return conclude(call.task, delivery, error=exc)
    return conclude(call.task, delivery, value)


async def execute(
    tasks: Mapping[str, Task[Any, Any]],
    delivery: Delivery,
    *,
    threads: ThreadRunner | None = None,
) -> Settlement:
    """Run `delivery` once and say how it ended; never raises except on cancellation.

    Sync tasks run on `threads` (a pool of their own when None).
    """
    plan = prepare(tasks, delivery)
    if isinstance(plan, Settlement):
        return plan
    own = threads is None
    pool = ThreadRunner() if threads is None else threads
    ended: asyncio.Future[Settlement | None] = asyncio.get_running_loop().create_future()

    def done(settlement: Settlement | None) -> None:
        if not ended.done():
            ended.set_result(settlement)

    coroutine = start(plan, delivery, pool, done)
    try:
        settlement = await ended
    except asyncio.CancelledError:
        if coroutine is not None:
            coroutine.cancel()
        raise
    finally:
        if own:
            pool.shutdown()
    if settlement is None:  # its coroutine was cancelled from outside
        raise asyncio.CancelledError
    return settlement


def timeout_error(task: Task[Any, Any]) -> TaskTimeout:
    return TaskTimeout(f"attempt exceeded {task.timeout}s")


def _failure(task: Task[Any, Any], delivery: Delivery, exc: BaseException) -> Settlement:
    error = error_text(exc)
    if delivery.attempt >= task.max_attempts:
        logger.error("task %s (%s) failed its last attempt", delivery.id, task.name, exc_info=exc)
        return Settlement(delivery, TaskState.DEAD, error=error)
    delay = retry_delay(task.backoff, delivery.attempt)
    logger.warning(
        "task %s (%s) attempt %d failed, retrying in %.1fs",
        delivery.id,
        task.name,
        delivery.attempt,
        delay,
        exc_info=exc,
    )
    return Settlement(delivery, TaskState.RETRYING, error=error, run_at=time.time() + delay)


class LeaseKeeper:
    """Renews the lease (visibility timeout) of running deliveries while they run."""

    def __init__(self, backend: AsyncBackend, lease: float) -> None:
        self._backend = backend
        self._lease = lease
        self._running: set[Delivery] = set()
        self._lock = threading.Lock()  # a worker's task thread adds and discards too

    def add(self, delivery: Delivery) -> None:
        with self._lock:
            self._running.add(delivery)

    def discard(self, delivery: Delivery) -> None:
        with self._lock:
            self._running.discard(delivery)

    async def run(self) -> None:
        """Renew every third of the lease until cancelled."""
        while True:
            await asyncio.sleep(self._lease / 3)
            with self._lock:
                running = list(self._running)
            await self.renew(running)

    async def renew(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        try:
            await self._backend.extend(deliveries, self._lease)
        except Exception:
            # Keep trying: a missed renewal only risks a duplicate run, never a lost task.
            logger.exception("could not renew the lease of %d task(s)", len(deliveries))
