"""Running one delivery: find the task, call it under its timeout, turn what happened into an
Outcome. Shared by the local worker and the Lambda consumer, so both retry and fail alike.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .backend import AsyncBackend
from .codec import encode_result
from .errors import InvalidArguments, TaskFailed, TaskTimeout, describe
from .models import Delivery, Outcome, TaskState
from .task import Task
from .threads import ThreadRunner

logger = logging.getLogger("holdfast.tasks")

#: Longest wait between two attempts, whatever the backoff (SQS caps visibility at 12 h).
MAX_BACKOFF = 3600.0


def retry_delay(backoff: float, attempt: int) -> float:
    """Exponential backoff with jitter: about `backoff * 2**(attempt-1)`, never less than half."""
    ceiling = min(backoff * 2.0 ** (attempt - 1), MAX_BACKOFF)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _dead(delivery: Delivery, error: str, *, counted: bool = True) -> Outcome:
    logger.error("task %s (%s) is dead: %s", delivery.id, delivery.task, error)
    return Outcome(delivery, TaskState.DEAD, error=error, counted=counted)


@dataclass(frozen=True, slots=True)
class Call:
    """A delivery that passed every check: the task and its call-ready arguments."""

    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def prepare(tasks: Mapping[str, Task[Any, Any]], delivery: Delivery) -> Call | Outcome:
    """The call to make for `delivery`, or at once its outcome when it must not run."""
    if delivery.settled is not None:  # a duplicate of a task that already finished
        return Outcome(delivery, delivery.settled, write=False)
    if delivery.not_before is not None:  # released until its delay is over
        return Outcome(delivery, TaskState.QUEUED, run_at=delivery.not_before, write=False)
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
        return _dead(delivery, describe(exc))
    except Exception as exc:  # RecursionError on absurd nesting, a validator's own bug...
        return _dead(delivery, f"InvalidArguments: {describe(exc)}")
    return Call(task, args, kwargs)


def conclude(
    task: Task[Any, Any], delivery: Delivery, value: Any = None, error: BaseException | None = None
) -> Outcome:
    """The outcome of an attempt that returned `value` or raised `error`."""
    if isinstance(error, TaskFailed):
        return Outcome(delivery, TaskState.FAILED, error=describe(error))
    if error is not None:  # SystemExit from a sync task's thread counts as a failure too
        return _failure(task, delivery, error)
    try:
        return Outcome(delivery, TaskState.SUCCEEDED, result=encode_result(value))
    except Exception as exc:  # TypeError, ValueError, RecursionError: never a stalled worker
        return Outcome(delivery, TaskState.FAILED, error=f"result is not JSON: {describe(exc)}")


async def run(call: Call, delivery: Delivery, threads: ThreadRunner | None = None) -> Outcome:
    """Make the call (async on this loop, sync on a thread) under the task's timeout."""
    try:
        value = await _call(call, threads)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return conclude(call.task, delivery, error=exc)
    return conclude(call.task, delivery, value)


async def execute(
    tasks: Mapping[str, Task[Any, Any]],
    delivery: Delivery,
    *,
    threads: ThreadRunner | None = None,
) -> Outcome:
    """Run `delivery` once and say how it ended; never raises except on cancellation."""
    plan = prepare(tasks, delivery)
    return plan if isinstance(plan, Outcome) else await run(plan, delivery, threads)


def timeout_error(task: Task[Any, Any]) -> TaskTimeout:
    return TaskTimeout(f"attempt exceeded {task.timeout}s")


def _failure(task: Task[Any, Any], delivery: Delivery, exc: BaseException) -> Outcome:
    error = describe(exc)
    if delivery.attempt >= task.max_attempts:
        logger.error("task %s (%s) failed its last attempt", delivery.id, task.name, exc_info=exc)
        return Outcome(delivery, TaskState.DEAD, error=error)
    delay = retry_delay(task.backoff, delivery.attempt)
    logger.warning(
        "task %s (%s) attempt %d failed, retrying in %.1fs",
        delivery.id,
        task.name,
        delivery.attempt,
        delay,
        exc_info=exc,
    )
    return Outcome(delivery, TaskState.RETRYING, error=error, run_at=time.time() + delay)


async def _call(call: Call, threads: ThreadRunner | None) -> Any:
    task = call.task
    if task.is_async:
        pending: Awaitable[Any] = task.fn(*call.args, **call.kwargs)
    elif threads is not None:
        pending = threads.run(task.fn, *call.args, **call.kwargs)
    else:
        # contextvars set by the caller (request ids, logging) reach the thread.
        pending = asyncio.to_thread(task.fn, *call.args, **call.kwargs)
    if task.timeout is None:
        return await pending
    try:
        async with asyncio.timeout(task.timeout):
            return await pending
    except TimeoutError:
        # A thread cannot be stopped: a sync task keeps its thread until it returns.
        raise timeout_error(task) from None


class LeaseKeeper:
    """Renews the lease (visibility timeout) of running deliveries while they run."""

    def __init__(self, backend: AsyncBackend, lease: float) -> None:
        self._backend = backend
        self._lease = lease
        self._running: set[Delivery] = set()

    def add(self, delivery: Delivery) -> None:
        self._running.add(delivery)

    def discard(self, delivery: Delivery) -> None:
        self._running.discard(delivery)

    async def run(self) -> None:
        """Renew every third of the lease until cancelled."""
        while True:
            await asyncio.sleep(self._lease / 3)
            await self.renew(list(self._running))

    async def renew(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        try:
            await self._backend.extend(deliveries, self._lease)
        except Exception:
            # Keep trying: a missed renewal only risks a duplicate run, never a lost task.
            logger.exception("could not renew the lease of %d task(s)", len(deliveries))
