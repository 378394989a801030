"""An in-process backend for tests and examples: same semantics as SQLite, no durability."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .backend import Listeners
from .codec import dump_payload, load_payload
from .models import PENDING_STATES, Delivery, Job, Settlement, TaskState, TaskStatus, new_task_id


@dataclass(slots=True)
class _Record:
    id: str
    job: Job
    payload: str
    seq: int
    state: TaskState = TaskState.QUEUED
    attempts: int = 0
    run_at: float = 0.0
    lease: str | None = None
    lease_until: float | None = None
    result: str | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None

    def status(self, queue: str) -> TaskStatus:
        return TaskStatus.from_row(
            id=self.id,
            queue=queue,
            task=self.job.task,
            state=self.state,
            attempts=self.attempts,
            result=self.result,
            error=self.error,
            created_at=self.job.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            run_at=self.run_at,
        )


class MemoryBackend:
    """Tasks in a dict, guarded by a lock; lost when the process exits."""

    blocking = False

    def __init__(self, *, queue: str = "default") -> None:
        self.queue = queue
        self._records: dict[str, _Record] = {}
        self._keys: dict[str, str] = {}
        # (run_at, seq, id); entries go stale when a record moves on, and are skipped then.
        self._due: list[tuple[float, int, str]] = []
        self._slots: dict[str, float] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._listeners = Listeners()

    def enqueue(self, job: Job) -> tuple[str, bool]:
        payload = dump_payload(job.args, job.kwargs)  # the JSON-only contract of real backends
        with self._lock:
            key = job.idempotency_key
            existing = self._records.get(self._keys.get(key, "")) if key else None
            if existing is not None and existing.state in PENDING_STATES:
                return existing.id, False
            task_id = new_task_id()
            record = _Record(task_id, job, payload, next(self._seq), run_at=job.run_at)
            self._records[task_id] = record
            if key:
                self._keys[key] = task_id
            heapq.heappush(self._due, (record.run_at, record.seq, task_id))
        self._listeners.notify()
        return task_id, True

    def hold(self, job: Job, lease: float) -> tuple[str, Delivery | None]:
        payload = dump_payload(job.args, job.kwargs)
        now = time.time()
        with self._lock:
            key = job.idempotency_key
            existing = self._records.get(self._keys.get(key, "")) if key else None
            if existing is not None and existing.state in PENDING_STATES:
                return existing.id, None
            task_id, token = new_task_id(), f"lease-{next(self._seq)}"
            record = _Record(task_id, job, payload, next(self._seq), run_at=job.run_at)
            record.state, record.attempts, record.started_at = TaskState.RUNNING, 1, now
            record.lease, record.lease_until = token, now + lease
            self._records[task_id] = record
            if key:
                self._keys[key] = task_id
        return task_id, self._delivery(record, token)

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self._listeners.subscribe(callback)

    def claim(self, limit: int, lease: float) -> list[Delivery]:
        now = time.time()
        token = f"lease-{next(self._seq)}"
        claimed: list[Delivery] = []
        with self._lock:
            while self._due and len(claimed) < limit and self._due[0][0] <= now:
                run_at, _, task_id = heapq.heappop(self._due)
                record = self._records[task_id]
                if record.run_at != run_at or record.state not in _CLAIMABLE:
                    continue
                record.state, record.lease = TaskState.RUNNING, token
                record.lease_until = now + lease
                record.attempts += 1
                record.started_at = now
                claimed.append(self._delivery(record, token))
        return claimed

    def settle_and_claim(
        self, settlements: Sequence[Settlement], limit: int, lease: float
    ) -> list[Delivery]:
        self.settle(settlements)
        return self.claim(limit, lease) if limit else []

    @staticmethod
    def _delivery(record: _Record, token: str) -> Delivery:
        args, kwargs = load_payload(record.payload)
        return Delivery(record.id, record.job.task, args, kwargs, record.attempts, token)

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        until = time.time() + lease
        with self._lock:
            for delivery in deliveries:
                record = self._owned(delivery)
                if record is not None:
                    record.lease_until = until

    def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        now = time.time()
        with self._lock:
            for settlement in settlements:
                record = self._owned(settlement.delivery) if settlement.write else None
                if record is None:
                    continue
                record.state, record.result, record.error = (
                    settlement.state,
                    settlement.result,
                    settlement.error,
                )
                record.lease = record.lease_until = None
                if not settlement.counted:
                    record.attempts -= 1
                if settlement.state.is_final:
                    record.finished_at = now
                else:
                    self._requeue(record, settlement.run_at or now)
        return [True] * len(settlements)

    def maintain(self) -> None:
        now = time.time()
        with self._lock:
            for record in self._records.values():
                if record.state is TaskState.RUNNING and (record.lease_until or 0) <= now:
                    record.state, record.lease, record.lease_until = TaskState.RETRYING, None, None
                    record.error = f"WorkerLost: the lease of attempt {record.attempts} expired"
                    self._requeue(record, now)

    def _requeue(self, record: _Record, run_at: float) -> None:
        record.run_at = run_at
        heapq.heappush(self._due, (run_at, record.seq, record.id))

    def _owned(self, delivery: Delivery) -> _Record | None:
        record = self._records.get(delivery.id or "")
        if record is None or record.lease != delivery.token:
            return None
        return record

    def claim_slot(self, name: str, slot: float) -> bool:
        with self._lock:
            if self._slots.get(name, float("-inf")) >= slot:
                return False
            self._slots[name] = slot
            return True

    def get(self, task_id: str) -> TaskStatus | None:
        with self._lock:
            record = self._records.get(task_id)
            return None if record is None else record.status(self.queue)

    def list(
        self, *, state: TaskState | None = None, task: str | None = None, limit: int = 50
    ) -> list[TaskStatus]:
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: r.seq, reverse=True)
            found = [
                r.status(self.queue)
                for r in records
                if (state is None or r.state == state) and (task is None or r.job.task == task)
            ]
        return found[:limit]

    def close(self) -> None:
        pass


_CLAIMABLE = frozenset({TaskState.QUEUED, TaskState.RETRYING})
