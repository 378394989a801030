"""`holdfast dev`'s task worker: a worker and the scheduler for every TaskQueue the app defines.

``python -m holdfast.dev.worker MODULE:ATTR`` imports the app with the runtime's loader (the
one ``holdfast run`` uses), finds the queues it created (``holdfast.tasks.registered_queues``:
found, not configured), and runs them all until SIGTERM or SIGINT, which let the running tasks
finish (a second signal cancels them; they are retried later). With ``$HOLDFAST_DEV_FEED_FD``
set it writes the queues found and every task status change, one JSON object a line, to that
descriptor for the dashboard.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from typing import Any

from holdfast.tasks import TaskQueue
from holdfast.tasks.queue import registered_queues
from holdfast.tasks.worker import Worker

FEED_ENV = "HOLDFAST_DEV_FEED_FD"
POLL_SECONDS = 0.1
LISTED = 200

logger = logging.getLogger("holdfast.dev")


class Feed:
    """JSON lines to `holdfast dev` (nowhere when no descriptor was given)."""

    def __init__(self, fd: int | None) -> None:
        self._file = os.fdopen(fd, "w", buffering=1) if fd is not None else None

    def send(self, kind: str, data: dict[str, Any]) -> None:
        if self._file is not None:
            try:
                self._file.write(json.dumps({"type": kind, **data}, default=str) + "\n")
            except (BrokenPipeError, ValueError):
                self._file = None


def describe(queue: TaskQueue) -> dict[str, Any]:
    """What the dashboard shows of a queue."""
    return {"name": queue.name, "url": queue.url, "status_prefix": queue.status_prefix}


async def watch(queues: list[TaskQueue], feed: Feed) -> None:
    """Send each task status that changed since the last look, forever."""
    seen: dict[str, dict[str, Any]] = {}
    while True:
        for queue in queues:
            try:
                statuses = await queue.list(limit=LISTED)
            except Exception as exc:  # a backend hiccup must not end the worker
                logger.warning("could not list tasks of queue %r: %s", queue.name, exc)
                continue
            for status in reversed(statuses):
                data = status.to_dict()
                data["status_url"] = f"{queue.status_prefix}/{status.id}"
                if seen.get(status.id) != data:
                    seen[status.id] = data
                    feed.send("task", {"status": data})
        await asyncio.sleep(POLL_SECONDS)


async def serve(queues: list[TaskQueue], feed: Feed) -> None:
    """Run a worker (with the scheduler) per queue until a signal stops them."""
    workers = [Worker(queue, scheduler=True) for queue in queues]
    loop = asyncio.get_running_loop()
    signals = 0

    def stop(signum: int) -> None:
        nonlocal signals
        signals += 1
        for worker in workers:
            worker.stop(force=signals > 1)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    watcher = asyncio.create_task(watch(queues, feed))
    try:
        await asyncio.gather(*(worker.run() for worker in workers))
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    """Load the app, find its queues, serve them; 1 if the app cannot be loaded."""
    from holdfast.runtime.loader import InitError, load

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m holdfast.dev.worker MODULE:ATTR", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="holdfast dev worker: %(message)s")
    fd = os.environ.get(FEED_ENV)
    feed = Feed(int(fd) if fd else None)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        load(args[0])
    except InitError:
        return 1  # the function's own init reports it, with the details
    queues = registered_queues()
    feed.send("queues", {"queues": [describe(queue) for queue in queues]})
    if not queues:
        return 0
    asyncio.run(serve(queues, feed))
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The tasks are settled. An Adapter the app created at import may still own an event loop
    # and a lifespan in this process; it serves no request here, and tearing it down at exit
    # only prints errors, so the worker leaves without running exit handlers.
    os._exit(status)
