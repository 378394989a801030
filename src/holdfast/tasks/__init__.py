"""holdfast.tasks: a durable task queue for ASGI/WSGI apps, embedded (SQLite) or on AWS (SQS).

    queue = TaskQueue("sqlite:///holdfast.db")

    @queue.task(retries=3)
    async def send_email(to: str) -> None: ...

    handle = await send_email.defer("a@example.com")
    status = await queue.status(handle.id)

Run the work with `holdfast tasks worker app:queue`, or on Lambda through
`holdfast.tasks.lambda_consumer`.
"""

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

_register()  # the task queue's event kinds and spill, plugged into holdfast's core

__all__ = [
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
    "get_queue",
    "registered_queues",
]
