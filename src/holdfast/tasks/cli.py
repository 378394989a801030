"""`holdfast tasks ...`: run a worker, read statuses.

holdfast tasks worker app.module:queue [--concurrency N] [--burst] [--no-scheduler]
holdfast tasks status app.module:queue TASK_ID
holdfast tasks list app.module:queue [--state S] [--task NAME] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from .models import TaskState
from .queue import TaskQueue
from .worker import Worker

logger = logging.getLogger("holdfast.tasks")


def load_queue(spec: str) -> TaskQueue:
    """Import `module:attribute` (from the current directory too) and return the TaskQueue."""
    from holdfast.runtime.loader import InitError, resolve

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"expected MODULE:QUEUE, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target = resolve(spec)
    except InitError as exc:
        raise SystemExit(str(exc)) from exc
    if not isinstance(target, TaskQueue):
        raise SystemExit(f"{spec} is a {type(target).__name__}, not a TaskQueue")
    return target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="holdfast tasks", description="durable task queue")
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run tasks until SIGTERM")
    worker.add_argument("queue", metavar="MODULE:QUEUE")
    worker.add_argument("--concurrency", type=int, default=10, help="tasks at once (10)")
    worker.add_argument("--poll-interval", type=float, default=0.005, help="idle poll, seconds")
    worker.add_argument("--burst", action="store_true", help="exit once nothing is due")
    worker.add_argument("--no-scheduler", action="store_true", help="do not queue periodic tasks")
    worker.add_argument("--log-level", default="INFO")

    status = commands.add_parser("status", help="print one task's status as JSON")
    status.add_argument("queue", metavar="MODULE:QUEUE")
    status.add_argument("task_id")

    listing = commands.add_parser("list", help="print recent statuses as JSON lines")
    listing.add_argument("queue", metavar="MODULE:QUEUE")
    listing.add_argument("--state", choices=[state.value for state in TaskState])
    listing.add_argument("--task")
    listing.add_argument("--limit", type=int, default=50)
    return parser


def main(argv: list[str]) -> int:
    """Entry point of `holdfast tasks`; returns the exit status."""
    try:
        return _main(argv)
    except SystemExit as exc:  # argparse and load_queue exit; the caller wants a status
        if isinstance(exc.code, str):
            print(f"holdfast tasks: {exc.code}", file=sys.stderr)
            return 2
        return int(exc.code or 0)


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "worker":
        return _worker(args)
    queue = load_queue(args.queue)
    if args.command == "status":
        status = queue.status_sync(args.task_id)
        if status is None:
            print(f"no task {args.task_id} on queue {queue.name!r}", file=sys.stderr)
            return 1
        print(json.dumps(status.to_dict(), indent=2))
        return 0
    for status in queue.list_sync(state=args.state, task=args.task, limit=args.limit):
        print(json.dumps(status.to_dict()))
    return 0


def _worker(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    queue = load_queue(args.queue)
    worker = Worker(
        queue,
        concurrency=args.concurrency,
        poll_interval=args.poll_interval,
        scheduler=not args.no_scheduler,
    )
    asyncio.run(_serve(worker, burst=args.burst))
    return 0


async def _serve(worker: Worker, *, burst: bool) -> None:
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        # The first signal drains; a second one cancels what still runs (it will be retried).
        force = signals_seen > 1
        logger.info("%s: %s", signal.Signals(signum).name, "cancelling" if force else "draining")
        worker.stop(force=force)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    logger.info(
        "worker for queue %r (%s), concurrency %d, pid %d",
        worker.queue.name,
        worker.queue.url,
        worker.concurrency,
        os.getpid(),
    )
    await worker.run(burst=burst)
    logger.info("worker stopped")
