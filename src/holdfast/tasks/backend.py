"""The contract between a TaskQueue and where its tasks live.

A backend stores task status and delivers attempts. Its calls are synchronous; `blocking`
tells whether a call may wait on the network or is a local sub-millisecond operation.
`AsyncBackend` is the same API for async code (what workers, the Lambda consumer and
`TaskQueue`'s async methods use): blocking calls go to a thread, local ones run inline.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, runtime_checkable

from .models import Delivery, Job, Settlement, TaskState, TaskStatus

logger = logging.getLogger("holdfast.tasks")


@runtime_checkable
class Backend(Protocol):
    """Storage and delivery of one named queue's tasks."""

    #: True when calls do network I/O and must not run on an event loop.
    blocking: bool

    def enqueue(self, job: Job) -> tuple[str, bool]:
        """Store and send a job; returns (task id, created).

        With `job.idempotency_key` set and a task with that key still pending, nothing is
        stored and that task's id comes back with `created=False`.
        """
        ...

    def hold(self, job: Job, lease: float) -> tuple[str, Delivery | None]:
        """Write `job` ahead as the caller's own running first attempt, leased for `lease`
        seconds; returns (task id, the delivery the caller runs and settles).

        No worker gets it while the lease holds. If the caller never settles (its process
        died), the lease lapses and a worker runs it, as any attempt whose worker was lost.
        With `job.idempotency_key` set and a task with that key still pending, nothing is
        stored and that task's id comes back with no delivery: the caller must not run it.
        """
        ...

    def claim(self, limit: int, lease: float) -> builtins.list[Delivery]:
        """Up to `limit` attempts that are due, each leased for `lease` seconds."""
        ...

    def settle_and_claim(
        self, settlements: Sequence[Settlement], limit: int, lease: float
    ) -> builtins.list[Delivery]:
        """`settle(settlements)`, then `claim(limit, lease)`: local backends do both in one
        transaction (one commit per round of a busy worker)."""
        ...

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        """Push the lease of running attempts `lease` seconds into the future."""
        ...

    def settle(self, settlements: Sequence[Settlement]) -> builtins.list[bool]:
        """Record settlements; returns, per settlement, whether the delivery is consumed.

        A delivery that is not consumed comes back later (a retry, or an SQS message left for
        the dead-letter redrive); a Lambda consumer reports those as batch item failures.
        """
        ...

    def maintain(self) -> None:
        """Periodic housekeeping by workers: make attempts whose lease expired (their worker
        died) claimable again, and the like."""
        ...

    def get(self, task_id: str) -> TaskStatus | None:
        """The status of one task of this queue, or None."""
        ...

    def list(
        self, *, state: TaskState | None = None, task: str | None = None, limit: int = 50
    ) -> builtins.list[TaskStatus]:
        """Newest first, optionally filtered by state and task name (records that read as
        `corrupt` are listed under that state only)."""
        ...

    def claim_slot(self, name: str, slot: float) -> bool:
        """Atomically own a periodic task's schedule slot; False if someone already did."""
        ...

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` after each enqueue in this process; returns an unsubscribe."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


_T = TypeVar("_T")


class AsyncBackend:
    """A backend's calls for async code: in a worker thread when the backend is blocking,
    inline otherwise (a thread hop would cost more than a local call)."""

    __slots__ = ("backend",)

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def call(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """`fn(*args, **kwargs)`, on a thread when the backend is blocking: how every async
        method of the task queue runs its one (synchronous) implementation."""
        if self.backend.blocking:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def enqueue(self, job: Job) -> tuple[str, bool]:
        return await self.call(self.backend.enqueue, job)

    async def claim(self, limit: int, lease: float) -> list[Delivery]:
        return await self.call(self.backend.claim, limit, lease)

    async def settle_and_claim(
        self, settlements: Sequence[Settlement], limit: int, lease: float
    ) -> list[Delivery]:
        return await self.call(self.backend.settle_and_claim, settlements, limit, lease)

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        await self.call(self.backend.extend, deliveries, lease)

    async def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        return await self.call(self.backend.settle, settlements)

    async def maintain(self) -> None:
        await self.call(self.backend.maintain)

    async def get(self, task_id: str) -> TaskStatus | None:
        return await self.call(self.backend.get, task_id)

    async def list(
        self, *, state: TaskState | None = None, task: str | None = None, limit: int = 50
    ) -> builtins.list[TaskStatus]:
        return await self.call(self.backend.list, state=state, task=task, limit=limit)

    async def claim_slot(self, name: str, slot: float) -> bool:
        return await self.call(self.backend.claim_slot, name, slot)


class Listeners:
    """In-process wake-ups: a worker in the producer's process starts new work at once."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._callbacks = [*self._callbacks, callback]

        def unsubscribe() -> None:
            with self._lock:
                self._callbacks = [cb for cb in self._callbacks if cb is not callback]

        return unsubscribe

    def notify(self) -> None:
        # Copy-on-write list: iterating needs no lock on the hot enqueue path.
        for callback in self._callbacks:
            callback()


class ParallelCalls:
    """Independent network calls of a backend run at once on a small pool (the cloud SDK
    clients are thread-safe); a call that raises is logged and answers `default` — left in
    flight, its message comes back and the task runs again."""

    def __init__(self, size: int, name: str) -> None:
        self._size, self._name = size, name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def run(self, calls: Sequence[Callable[[], _T]], default: _T) -> builtins.list[_T]:
        def guarded(call: Callable[[], _T]) -> _T:
            try:
                return call()
            except Exception:
                logger.exception("task backend call failed")
                return default

        if len(calls) <= 1:
            return [guarded(call) for call in calls]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._size, thread_name_prefix=self._name)
            pool = self._pool
        return builtins.list(pool.map(guarded, calls))

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()


def open_backend(url: str, *, queue: str, endpoint_url: str | None = None) -> Backend:
    """The backend for a queue URL: `sqlite:///path.db`, `sqs://<queue-url>?table=T`,
    `azure://<storage-queue>?table=T`, `memory://`.

    SQLite takes `?synchronous=full` for fsync on every commit (the default, NORMAL, survives
    process crashes but may lose the last commits on power loss).
    """
    from urllib.parse import parse_qs, urlsplit

    from .errors import BackendError

    scheme, _, rest = url.partition("://")
    if scheme == "memory":
        from .memory import MemoryBackend

        return MemoryBackend(queue=queue)
    if scheme == "sqlite":
        from .sqlite import SQLiteBackend

        parts = urlsplit(url)
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        # sqlite:///relative.db and sqlite:////absolute.db, as in SQLAlchemy.
        path = parts.netloc + parts.path[1:] if parts.path.startswith("/") else parts.path
        return SQLiteBackend(path, queue=queue, synchronous=options.get("synchronous", "NORMAL"))
    if scheme == "sqs":
        from .sqs import SQSBackend

        return SQSBackend.from_url(rest, queue=queue, endpoint_url=endpoint_url)
    if scheme == "azure":
        from .azure import AzureBackend

        return AzureBackend.from_url(rest, queue=queue)
    raise BackendError(
        f"unsupported task queue URL {url!r} (sqlite://, sqs://, azure://, memory://)"
    )
