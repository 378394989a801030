"""A function registered with `@queue.task`, and the options a single defer may carry."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from .codec import ArgumentCodec

if TYPE_CHECKING:
    from .queue import TaskHandle, TaskQueue

P = ParamSpec("P")
R = TypeVar("R")


class Task(Generic[P, R]):
    """A task function: call it directly as before, or `defer` it to a worker.

    `retries` is the number of attempts after the first; `backoff` the base delay in seconds
    of the exponential, jittered retry schedule; `timeout` (seconds) bounds each attempt.
    """

    def __init__(
        self,
        queue: TaskQueue,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        retries: int = 3,
        backoff: float = 1.0,
        timeout: float | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if backoff < 0:
            raise ValueError("backoff must be >= 0")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be > 0 (or None)")
        self.queue = queue
        self.fn = fn
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.is_async = inspect.iscoroutinefunction(fn)
        self.codec = ArgumentCodec(fn)
        functools.update_wrapper(self, fn)

    @property
    def max_attempts(self) -> int:
        """The first attempt plus the retries."""
        return self.retries + 1

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name!r} of queue {self.queue.name!r}>"

    def options(
        self, *, delay: float | timedelta | None = None, idempotency_key: str | None = None
    ) -> TaskOptions[P]:
        """Defer with options: `await fn.options(delay=60, idempotency_key="k").defer(x)`.

        A second defer with the same idempotency key, while the first task is still queued,
        running or retrying, returns the first task's handle instead of queueing another.
        """
        return TaskOptions(self, delay, idempotency_key)

    async def defer(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """Validate the arguments as JSON and queue one run; returns its handle."""
        return await self.queue.enqueue(self.name, args, kwargs)

    def defer_sync(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """`defer` for synchronous code."""
        return self.queue.enqueue_sync(self.name, args, kwargs)


@dataclass(frozen=True, slots=True)
class TaskOptions(Generic[P]):
    """A task bound to per-call options; made by `Task.options`."""

    task: Task[P, Any]
    delay: float | timedelta | None
    idempotency_key: str | None

    async def defer(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """Like `Task.defer`, with these options."""
        return await self.task.queue.enqueue(
            self.task.name,
            args,
            kwargs,
            delay=self.delay,
            idempotency_key=self.idempotency_key,
        )

    def defer_sync(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """Like `Task.defer_sync`, with these options."""
        return self.task.queue.enqueue_sync(
            self.task.name,
            args,
            kwargs,
            delay=self.delay,
            idempotency_key=self.idempotency_key,
        )
