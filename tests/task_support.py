"""Task-queue test helpers shared by the tasks and Azure suites."""

import asyncio
from collections.abc import Iterator

from holdfast.tasks import TaskQueue
from holdfast.tasks import queue as queue_module


def isolated_registry() -> Iterator[None]:
    """Each test sees only the task queues it creates; they are closed after it."""
    before = dict(queue_module._registry)
    queue_module._registry.clear()
    yield
    for queue in list(queue_module._registry.values()):
        queue.close()
    queue_module._registry.clear()
    queue_module._registry.update(before)


async def run_until(queue: TaskQueue, handles, **options):
    """Run a worker of ``queue`` until every handle's task has finished; their results."""
    # A remote queue is polled every 50 ms at most (no long polling in the tests' URLs).
    worker = queue.worker(poll_interval=0.05, **options)
    running = asyncio.create_task(worker.run())
    try:
        return [await h.wait(timeout=60) for h in handles]
    finally:
        worker.stop()
        await running
