"""TaskQueue: register tasks, defer them, read their status.

Every queue registers itself by name in a module-level registry on creation, so code that
only has an event (the Lambda consumer) or a task name (after-response spilling) can find it.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from .backend import AsyncBackend, Backend, open_backend
from .codec import check_json
from .errors import UnknownTask
from .models import Delivery, Job, TaskState, TaskStatus
from .schedule import Cron, Periodic
from .task import Task

if TYPE_CHECKING:
    from starlette.responses import JSONResponse

    from .worker import Worker

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_URL = "sqlite:///holdfast.db"

_registry: dict[str, TaskQueue] = {}
_registry_lock = threading.Lock()


def registered_queues() -> list[TaskQueue]:
    """Every TaskQueue created (and not closed) in this process, oldest first."""
    with _registry_lock:
        return list(_registry.values())


def get_queue(name: str) -> TaskQueue | None:
    """The registered queue called `name`, if any."""
    with _registry_lock:
        return _registry.get(name)


class TaskHandle:
    """A reference to one deferred task. `created` is False when an idempotency key matched."""

    __slots__ = ("created", "id", "queue")

    def __init__(self, queue: TaskQueue, task_id: str, created: bool = True) -> None:
        self.queue = queue
        self.id = task_id
        self.created = created

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id} of queue {self.queue.name!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskHandle):
            return NotImplemented
        return (self.queue.name, self.id) == (other.queue.name, other.id)

    def __hash__(self) -> int:
        return hash((self.queue.name, self.id))

    async def status(self) -> TaskStatus | None:
        """The task's current status."""
        return await self.queue.status(self.id)

    def status_sync(self) -> TaskStatus | None:
        """`status` for synchronous code."""
        return self.queue.status_sync(self.id)

    async def wait(self, timeout: float | None = None, *, poll: float = 0.01) -> TaskStatus:
        """Poll until the task is final (succeeded, failed or dead) and return that status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = await self.status()
            if status is not None and status.state.is_final:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {self.id} not finished after {timeout}s")
            await asyncio.sleep(poll)
            poll = min(poll * 1.5, 0.25)


def _seconds(delay: float | timedelta | None) -> float:
    if delay is None:
        return 0.0
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    return max(seconds, 0.0)


class TaskQueue:
    """A durable task queue.

    `url` picks the backend: `sqlite:///path/to.db` (embedded, the default),
    `sqs://<queue-url>?table=<dynamodb-table>` (SQS delivers, DynamoDB keeps status; pass
    `endpoint_url=` or set `AWS_ENDPOINT_URL` for a local AWS emulator), or `memory://`.
    `visibility_timeout` is the lease (seconds) of a running attempt: workers renew it while
    the task runs, and a task whose worker died is delivered again once it lapses.

    `backend` is the storage (synchronous calls); `async_backend` the same calls for async
    code, run so that they never block the event loop.
    """

    def __init__(
        self,
        url: str | Backend = DEFAULT_URL,
        *,
        name: str = "default",
        visibility_timeout: float = 30.0,
        endpoint_url: str | None = None,
        register: bool = True,
    ) -> None:
        if visibility_timeout <= 0:
            raise ValueError("visibility_timeout must be > 0")
        self.name = name
        self.url = url if isinstance(url, str) else type(url).__name__
        self.visibility_timeout = float(visibility_timeout)
        self.backend: Backend = (
            open_backend(url, queue=name, endpoint_url=endpoint_url)
            if isinstance(url, str)
            else url
        )
        self.async_backend = AsyncBackend(self.backend)
        self._tasks: dict[str, Task[Any, Any]] = {}
        self.periodic_tasks: list[Periodic] = []
        self.status_prefix = "/tasks"
        if register:
            with _registry_lock:
                _registry[name] = self

    def __repr__(self) -> str:
        return f"<TaskQueue {self.name!r} {self.url}>"

    @property
    def tasks(self) -> Mapping[str, Task[Any, Any]]:
        """The registered tasks by name."""
        return MappingProxyType(self._tasks)

    # -- registration -----------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        retries: int = 3,
        backoff: float = 1.0,
        timeout: float | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        retries: int = 3,
        backoff: float = 1.0,
        timeout: float | None = None,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a sync or async function as a task (`@queue.task` or `@queue.task(...)`).

        Name tasks explicitly when their module may be renamed or run as `__main__`: queued
        messages refer to tasks by name.
        """

        def register(function: Callable[P, R]) -> Task[P, R]:
            task = Task(
                self, function, name=name, retries=retries, backoff=backoff, timeout=timeout
            )
            if task.name in self._tasks:
                raise ValueError(f"task {task.name!r} is already registered on {self!r}")
            self._tasks[task.name] = task
            return task

        return register if fn is None else register(fn)

    def periodic(
        self,
        cron: str,
        *,
        name: str | None = None,
        retries: int = 3,
        backoff: float = 1.0,
        timeout: float | None = None,
    ) -> Callable[[Callable[[], R]], Task[[], R]]:
        """Register a task that takes no arguments to run on a cron schedule (UTC).

        Locally the worker's scheduler queues it; on AWS an EventBridge scheduled event does
        (see `holdfast.tasks.lambda_consumer`). Each slot runs once, however many schedulers.
        """
        schedule = Cron(cron)

        def register(function: Callable[[], R]) -> Task[[], R]:
            task = self.task(name=name, retries=retries, backoff=backoff, timeout=timeout)(function)
            task.codec.encode((), {})  # a periodic task must be callable without arguments
            self.periodic_tasks.append(Periodic(task, schedule))
            return task

        return register

    # -- producing --------------------------------------------------------------------------

    async def enqueue(
        self,
        task_name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        delay: float | timedelta | None = None,
    ) -> TaskHandle:
        """Queue a task by name with JSON arguments, without importing its function.

        When the task is registered here its signature and type hints validate the
        arguments; otherwise they only have to be JSON (the worker validates them).
        """
        return await self.async_backend.call(
            self.enqueue_sync,
            task_name,
            args,
            kwargs,
            idempotency_key=idempotency_key,
            delay=delay,
        )

    def enqueue_sync(
        self,
        task_name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        delay: float | timedelta | None = None,
    ) -> TaskHandle:
        """`enqueue` for synchronous code (the one implementation; `enqueue` runs it off the
        event loop when the backend does network I/O)."""
        job = self._job(task_name, args, kwargs, idempotency_key, delay)
        task_id, created = self.backend.enqueue(job)
        return TaskHandle(self, task_id, created)

    def hold_sync(
        self,
        task_name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        lease: float,
        idempotency_key: str | None = None,
    ) -> tuple[str, Delivery | None]:
        """Write a task ahead as the caller's own running attempt, leased for `lease` seconds
        (`Backend.hold`): durable after-response work (`holdfast.tasks.durable`)."""
        job = self._job(task_name, args, kwargs, idempotency_key, None)
        return self.backend.hold(job, lease)

    def _job(
        self,
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        idempotency_key: str | None,
        delay: float | timedelta | None,
    ) -> Job:
        if idempotency_key is not None and not (
            isinstance(idempotency_key, str) and idempotency_key
        ):
            raise ValueError("idempotency_key must be a non-empty string")
        task = self._tasks.get(task_name)
        if task is not None:
            json_args, json_kwargs = task.codec.encode(tuple(args), dict(kwargs or {}))
        else:
            json_args = check_json(list(args), "args", outer=1)
            json_kwargs = check_json(dict(kwargs or {}), "kwargs", outer=1)
        now = time.time()
        return Job(
            queue=self.name,
            task=task_name,
            args=json_args,
            kwargs=json_kwargs,
            created_at=now,
            run_at=now + _seconds(delay),
            idempotency_key=idempotency_key,
        )

    # -- status -----------------------------------------------------------------------------

    async def status(self, task_id: str) -> TaskStatus | None:
        """The status of a task of this queue, or None if unknown."""
        return await self.async_backend.call(self.status_sync, task_id)

    def status_sync(self, task_id: str) -> TaskStatus | None:
        """`status` for synchronous code."""
        return self.backend.get(task_id)

    async def list(
        self,
        *,
        state: TaskState | str | None = None,
        task: str | None = None,
        limit: int = 50,
    ) -> builtins.list[TaskStatus]:
        """Statuses newest first, filtered by state and task name."""
        return await self.async_backend.call(self.list_sync, state=state, task=task, limit=limit)

    def list_sync(
        self,
        *,
        state: TaskState | str | None = None,
        task: str | None = None,
        limit: int = 50,
    ) -> builtins.list[TaskStatus]:
        """`list` for synchronous code."""
        state = None if state is None else TaskState(state)
        return self.backend.list(state=state, task=task, limit=limit)

    # -- serving and running ----------------------------------------------------------------

    def router(
        self,
        *,
        dependencies: Iterable[Any] | None = None,
        prefix: str = "/tasks",
        public: bool = False,
        starlette: bool = False,
    ) -> Any:
        """Status endpoints: `GET {prefix}/{id}` and `GET {prefix}?state=&task=&limit=`.

        A FastAPI `APIRouter` whose `dependencies` (e.g. `[Depends(require_user)]`) guard
        both endpoints; with `starlette=True`, a Starlette `Router` whose dependencies are
        callables taking the request. Without dependencies, `public=True` must be passed to
        acknowledge that task results become readable by anyone.
        """
        from .router import build_router

        return build_router(
            self, dependencies=dependencies, prefix=prefix, public=public, starlette=starlette
        )

    def accepted(self, handle: TaskHandle, request: Any = None) -> JSONResponse:
        """A `202 Accepted` response whose `Location` is the task's status URL."""
        from .router import accepted

        return accepted(self, handle, request)

    def worker(self, **options: Any) -> Worker:
        """A `Worker` for this queue (see `holdfast.tasks.Worker` for options)."""
        from .worker import Worker

        return Worker(self, **options)

    def get_task(self, name: str) -> Task[Any, Any]:
        """The registered task called `name`; raises UnknownTask."""
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTask(f"unknown task {name!r} on queue {self.name!r}") from None

    def close(self) -> None:
        """Unregister the queue and release its backend."""
        with _registry_lock:
            if _registry.get(self.name) is self:
                del _registry[self.name]
        self.backend.close()
