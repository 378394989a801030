"""Running `azure://` task queues inside the Function App: a queue trigger per queue.

The Functions host receives the message, keeps it invisible while the function runs and
deletes it when the function returns; a function that raises gets the message again, up to
`maxDequeueCount` (host.json, 5 by default), then the host moves it to `<queue>-poison`.
holdfast's part (`consume`): start the attempt in the status table, run the task on the
adapter's loop (where the app's lifespan state lives), renew the status lease while it runs,
and settle: a retry or a dead letter is a *copy* of the message (delayed, or in the poison
queue) and the function returns normally, so the host deletes the original. It raises only
when the outcome could not be recorded (storage down): the host then delivers it again.

A queue with periodic tasks also gets a timer trigger, every minute, that queues the due ones
and looks into the poison queue (`maintain`), as a worker's scheduler would.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import azure.functions as func

from holdfast.tasks.azure import AzureBackend
from holdfast.tasks.errors import BackendError
from holdfast.tasks.executor import LeaseKeeper, execute
from holdfast.tasks.schedule import fire_due
from holdfast.tasks.threads import ThreadRunner

if TYPE_CHECKING:
    from holdfast.azure.app import FunctionApp
    from holdfast.tasks import TaskQueue

logger = logging.getLogger("holdfast.tasks")


class TaskNotSettled(BackendError):
    """The task ran (or not) but its outcome could not be recorded: deliver it again."""


async def consume(queue: TaskQueue, message: Any) -> None:
    """Run one `azure.functions.QueueMessage` of `queue`'s storage queue."""
    backend = queue.backend
    assert isinstance(backend, AzureBackend)
    body = message.get_body().decode("utf-8", "replace")
    delivery = await asyncio.to_thread(
        backend.accept,
        body,
        message.pop_receipt or "",
        message.id or "",
        managed=True,
        lease=queue.visibility_timeout,
        dequeue_count=message.dequeue_count,
    )
    keeper = LeaseKeeper(queue.async_backend, queue.visibility_timeout)
    keeper.add(delivery)
    renewing = asyncio.create_task(keeper.run())
    threads = ThreadRunner()
    try:
        outcome = await execute(queue.tasks, delivery, threads=threads)
    finally:
        renewing.cancel()
        threads.shutdown()
    [consumed] = await queue.async_backend.settle([outcome])
    if not consumed:
        raise TaskNotSettled(f"task {delivery.id}: its outcome could not be recorded")


async def fire_periodic(queue: TaskQueue) -> list[str]:
    """Queue `queue`'s periodic tasks due this minute, then reconcile with the poison queue."""
    handles = await fire_due(queue, datetime.now(UTC))
    try:
        await queue.async_backend.maintain()
    except Exception:
        logger.exception("maintenance of task queue %s failed", queue.name)
    return [handle.id for handle in handles]


def function_name_for(queue: TaskQueue, kind: str) -> str:
    # Function names: a letter first, then letters, digits, `_` and `-`.
    return f"holdfast_{kind}_" + re.sub(r"[^A-Za-z0-9_-]", "_", queue.name)


def queue_trigger_function(app: FunctionApp, queue: TaskQueue, connection: str) -> Any:
    """Register the queue trigger (and, with periodic tasks, the timer) for `queue` on `app`."""
    backend = queue.backend
    if not isinstance(backend, AzureBackend):
        raise TypeError(f"task queue {queue.name!r} is not on an azure:// URL: {queue.url!r}")

    async def task_queue_func(msg: Any) -> None:
        await app.runner.run(consume(queue, msg))

    task_queue_func.__annotations__ = {"msg": func.QueueMessage, "return": None}
    name = function_name_for(queue, "tasks")
    task_queue_func.__name__ = name
    registered = app.function_name(name=name)(
        app.queue_trigger(arg_name="msg", queue_name=backend.queue_name, connection=connection)(
            task_queue_func
        )
    )
    if queue.periodic_tasks:

        async def periodic_func(timer: Any) -> None:
            await app.runner.run(fire_periodic(queue))

        periodic_func.__annotations__ = {"timer": func.TimerRequest, "return": None}
        periodic_name = function_name_for(queue, "schedule")
        periodic_func.__name__ = periodic_name
        app.function_name(name=periodic_name)(
            app.timer_trigger(arg_name="timer", schedule="0 * * * * *")(periodic_func)
        )
    return registered
