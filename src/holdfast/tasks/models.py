"""The data that moves through the queue: states, status snapshots, jobs, deliveries and
how each delivery ended (settlements).
"""

from __future__ import annotations

import enum
import json
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any


class TaskState(enum.StrEnum):
    """Where a task is in its life.

    `failed` is a deliberate, final failure (the task raised `TaskFailed`, or its result could
    not be stored); `dead` means retries ran out or the input was bad, and on SQS the message
    is left for the queue's redrive policy to move to the dead-letter queue. `corrupt` is never
    written by holdfast: it reports a stored record that cannot be read (an unknown state, a
    time or count that is not a number, a result that is not JSON); `error` says what is wrong.
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRYING = "retrying"
    DEAD = "dead"
    CORRUPT = "corrupt"

    @property
    def is_final(self) -> bool:
        """True once the task will never run again."""
        return self in _FINAL_STATES


_FINAL_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.DEAD, TaskState.CORRUPT}
)
PENDING_STATES = frozenset({TaskState.QUEUED, TaskState.RUNNING, TaskState.RETRYING})


def new_task_id() -> str:
    """32 hex digits: microseconds since the epoch, then 72 random bits.

    Time-ordered ids append to the right edge of B-tree indexes; the random part keeps them
    unguessable.
    """
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(9)}"


_SHOWN = 60  # characters of a bad stored value quoted in a `corrupt` status


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # holdfast never stores NaN or infinities


class _RowReader:
    """Reads stored values defensively, collecting what could not be read."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def _bad(self, name: str, value: Any, expected: str) -> None:
        self.problems.append(f"{name} {_shown(value)} is not {expected}")

    def text(self, name: str, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bytes):  # a BLOB where text belongs
            self._bad(name, value, "text")
            return value.decode("utf-8", "replace")
        return str(value)

    def state(self, value: Any) -> TaskState:
        try:
            return TaskState(value)
        except ValueError:
            self._bad("state", value, "a known state")
            return TaskState.CORRUPT

    def count(self, name: str, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)  # DynamoDB numbers arrive as floats
        self._bad(name, value, "a count")
        return 0

    def time(self, name: str, value: Any) -> datetime | None:
        if value is None:
            return None
        try:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError
            return datetime.fromtimestamp(value, UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            self._bad(name, value, "a time (epoch seconds)")
            return None

    def json(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        try:
            return json.loads(value, parse_constant=_not_json)
        except (TypeError, ValueError, RecursionError):
            self._bad(name, value, "JSON")
            return None


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
        queue: Any,
        task: Any,
        state: Any,
        attempts: Any,
        result: Any,
        error: Any,
        created_at: Any,
        started_at: Any,
        finished_at: Any,
        run_at: Any,
    ) -> TaskStatus:
        """Build a status from stored values (epoch seconds, result as JSON text).

        Never raises: a value that cannot be read (edited by hand, written by other software,
        damaged) makes the state `corrupt`, with `error` naming every such column.
        """
        row = _RowReader()
        status = cls(
            id=id,
            queue=row.text("queue", queue) or "",
            task=row.text("task", task) or "",
            state=row.state(state),
            attempts=row.count("attempts", attempts),
            result=row.json("result", result),
            error=row.text("error", error),
            created_at=row.time("created_at", created_at) or datetime.fromtimestamp(0, UTC),
            started_at=row.time("started_at", started_at),
            finished_at=row.time("finished_at", finished_at),
            run_at=row.time("run_at", run_at),
        )
        if not row.problems:
            return status
        problems = "; ".join(row.problems)
        last = f"; last error: {status.error}" if status.error else ""
        return replace(status, state=TaskState.CORRUPT, error=f"CorruptRecord: {problems}{last}")

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
    delivered a long-delayed message early. SQS only: `lease` names the attempt in the status
    table (a write from an attempt that was superseded is dropped); `receives` is the
    message's receive count, `managed` True when Lambda deletes the message on success.
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
    managed: bool = False
    lease: str | None = None
    receives: int | None = None


@dataclass(slots=True)
class Settlement:
    """How a delivery ended, to be written back by `Backend.settle`.

    (Named apart from `holdfast.outcome.Outcome`, the core's result of one invocation.)

    `result` is JSON text. `write` is False when the status must stay untouched (a duplicate
    of a finished task, or a message released until its delay is over). `counted` is False
    when the delivery never called the task (bad input, no attempts left): the backend takes
    back the attempt it counted when it handed the delivery out.
    """

    delivery: Delivery
    state: TaskState
    result: str | None = None
    error: str | None = None
    run_at: float | None = None
    write: bool = True
    counted: bool = True
