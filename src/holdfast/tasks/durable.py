"""Durable after-response work: `after_response(task, ..., durable=True)` for a holdfast task.

The core's write-ahead hook (`holdfast.pending.write_ahead_with`) calls `write_ahead` while the
request is handled, before its response can go out: the task is stored as this environment's
own running first attempt, leased past the invocation's deadline (`Backend.hold`), so no worker
takes it meanwhile. After the response it runs here through the executor (the worker's path:
timeout, retries, result as JSON) and its settlement marks it done. If the environment dies
first, nothing settles; the lease lapses and a worker runs it, like any attempt whose worker
was lost. Cut off by the deadline, it is released to the queue at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from holdfast.pending import WrittenAhead

from .executor import execute
from .models import Delivery, Settlement, TaskState
from .task import Task, TaskOptions


def write_ahead(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], lease: float
) -> WrittenAhead | None:
    """Store `fn(*args, **kwargs)` ahead when `fn` is a task (or `task.options(...)`)."""
    if isinstance(fn, TaskOptions):
        if fn.delay is not None:
            raise ValueError(
                "durable after-response work runs right after the response: a delay does not "
                "apply (use defer() for work that should run later)"
            )
        task, key = fn.task, fn.idempotency_key
    elif isinstance(fn, Task):
        task, key = fn, None
    else:
        return None
    task_id, delivery = task.queue.hold_sync(
        task.name, args, kwargs, lease=lease, idempotency_key=key
    )
    if delivery is None:
        return WrittenAhead(task_id, None, _nothing)
    held = _HeldRun(task, delivery)
    return WrittenAhead(task_id, held.run, held.release, in_thread=not task.is_async)


class _HeldRun:
    """One written-ahead task's run in this environment."""

    __slots__ = ("delivery", "settlement", "task")

    def __init__(self, task: Task[Any, Any], delivery: Delivery) -> None:
        self.task, self.delivery = task, delivery
        #: How the run ended, once it has: what a cut-off mark-done still writes.
        self.settlement: Settlement | None = None

    async def run(self) -> None:
        self.settlement = settlement = await execute({self.task.name: self.task}, self.delivery)
        await self.task.queue.async_backend.settle([settlement])
        if settlement.state is not TaskState.SUCCEEDED and settlement.error is not None:
            raise _Unsuccessful(
                f"task {self.delivery.id} ended {settlement.state}: {settlement.error}"
            )

    async def release(self) -> str | None:
        """Cut off by the deadline: if the task had ended, only its mark-done was cut, so
        write that (a release would run it twice); otherwise hand the attempt to the queue
        now, not counted against the retries."""
        settlement = self.settlement
        if settlement is None:
            error = "Released: the invocation's deadline cut the run in its environment short"
            settlement = Settlement(
                self.delivery, TaskState.RETRYING, error=error, run_at=time.time(), counted=False
            )
        await self.task.queue.async_backend.settle([settlement])
        return self.delivery.id


async def _nothing() -> None:
    return None


class _Unsuccessful(Exception):
    """The run here failed: the drain reports it as failed work (its retries are the queue's)."""
