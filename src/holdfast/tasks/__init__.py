"""holdfast.tasks: a durable task queue for ASGI/WSGI apps, embedded (SQLite) or on AWS (SQS).

    queue = TaskQueue("sqlite:///holdfast.db")

    @queue.task(retries=3)
    async def send_email(to: str) -> None: ...

    handle = await send_email.defer("a@example.com")
    status = await queue.status(handle.id)

Run the work with `holdfast tasks worker app:queue`; on Lambda the Adapter consumes the
queue's SQS batches and schedules itself. `create_table` makes the DynamoDB status table of
an `sqs://` queue; `Backend` is the protocol a storage backend implements.

Everything a user imports is here; the submodules are internal.
"""

from typing import TYPE_CHECKING, Any

from .backend import Backend
from .errors import (
    BackendError,
    InvalidArguments,
    TaskError,
    TaskFailed,
    TaskTimeout,
    UnknownTask,
)
from .integration import register as _register
from .models import TaskState, TaskStatus
from .queue import TaskHandle, TaskQueue, get_queue, registered_queues
from .schedule import Cron
from .task import Task, TaskOptions
from .worker import Worker

if TYPE_CHECKING:
    from .sqs import create_table

_register()  # the task queue's event kinds and spill, plugged into holdfast's core

__all__ = [
    "Backend",
    "BackendError",
    "Cron",
    "InvalidArguments",
    "Task",
    "TaskError",
    "TaskFailed",
    "TaskHandle",
    "TaskOptions",
    "TaskQueue",
    "TaskState",
    "TaskStatus",
    "TaskTimeout",
    "UnknownTask",
    "Worker",
    "create_table",
    "get_queue",
    "registered_queues",
]


def __getattr__(name: str) -> Any:
    # The SQS modules load on first use: an SQLite queue's cold start does not pay for them.
    if name == "create_table":
        from .sqs import create_table

        return create_table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
