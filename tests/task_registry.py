"""Task-queue test isolation shared by the tasks and Azure suites."""

from collections.abc import Iterator

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
