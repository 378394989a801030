"""The data that moves through the queue: states, status snapshots, jobs, deliveries, outcomes."""

from __future__ import annotations

import enum
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class TaskState(enum.StrEnum):
    """Where a task is in its life.

    `failed` is a deliberate, final failure (the task raised `TaskFailed`, or its result could
    not be stored); `dead` means retries ran out or the input was bad, and on SQS the message
    is left for the queue's redrive policy to move to the dead-letter queue.
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRYING = "retrying"
    DEAD = "dead"

    @property
    def is_final(self) -> bool:
        """True once the task will never run again."""
        return self in _FINAL_STATES


_FINAL_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.DEAD})
PENDING_STATES = frozenset({TaskState.QUEUED, TaskState.RUNNING, TaskState.RETRYING})


def new_task_id() -> str:
    """32 hex digits: microseconds since the epoch, then 72 random bits.

    Time-ordered ids append to the right edge of B-tree indexes; the random part keeps them
    unguessable.
    """
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(9)}"


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """A snapshot of one task, as stored by the backend.

    `error` is `"ExceptionType: message"` of the last failed attempt, never a traceback (those
    go to the worker's log). Times are timezone-aware UTC datetimes.
    """

    id: str
    queue: str
    task: str
    state: TaskState
    attempts: int
    result: Any
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_at: datetime | None

    @classmethod
    def from_row(
        cls,
        *,
        id: str,
        queue: str,
        task: str,
        state: str,
        attempts: int,
        result: str | None,
        error: str | None,
        created_at: float,
        started_at: float | None,
        finished_at: float | None,
        run_at: float | None,
    ) -> TaskStatus:
        """Build a status from stored values (epoch seconds, result as JSON text)."""
        return cls(
            id=id,
            queue=queue,
            task=task,
            state=TaskState(state),
            attempts=int(attempts),
            result=None if result is None else json.loads(result),
            error=error,
            created_at=_utc(created_at) or datetime.fromtimestamp(0, UTC),
            started_at=_utc(started_at),
            finished_at=_utc(finished_at),
            run_at=_utc(run_at),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, as served by the status router."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "queue": self.queue,
            "task": self.task,
            "state": self.state.value,
            "attempts": self.attempts,
            "result": self.result,
            "error": self.error,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "run_at": iso(self.run_at),
        }


@dataclass(slots=True)
class Job:
    """A task invocation on its way into a backend: arguments already JSON-ready.

    The backend assigns the task id.
    """

    queue: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    created_at: float
    run_at: float
    idempotency_key: str | None = None


@dataclass(slots=True, eq=False)
class Delivery:
    """One attempt handed to a worker.

    `token` proves the attempt still owns the task (a lease token for SQLite, a receipt
    handle for SQS). `error` is set when the payload could not be decoded; `settled` when the
    backend already knows the task is final (a duplicate delivery); `not_before` when SQS
    delivered a long-delayed message early.
    """

    id: str | None
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    attempt: int
    token: Any
    error: str | None = None
    settled: TaskState | None = None
    not_before: float | None = None
    message_id: str | None = None
    # True when the runtime (Lambda) deletes the message itself on success.
    managed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """What happened to a delivery, to be written back by `Backend.settle`.

    `result` is JSON text. `write` is False when the status must stay untouched (a duplicate
    of a finished task, or a message released until its delay is over).
    """

    delivery: Delivery
    state: TaskState
    result: str | None = None
    error: str | None = None
    run_at: float | None = None
    write: bool = True
