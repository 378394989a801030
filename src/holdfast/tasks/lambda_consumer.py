"""Running tasks inside a Lambda function: SQS events and EventBridge schedules.

`holdfast.dispatch` routes an event here when `is_task_batch(event)` or
`is_task_schedule(event)` is true, and returns what
`handle_event(event, context)` (or `await handle_event_async(...)`) returns:

* an SQS event whose messages are holdfast tasks: every message runs (concurrently, the
  visibility of long ones extended while they run) and the answer is
  `{"batchItemFailures": [...]}`, naming the messages to deliver again: retries (their
  visibility set to the backoff), dead ones left for the redrive policy, and any message that
  could not be routed. Enable `ReportBatchItemFailures` on the event source mapping.
* an EventBridge "Scheduled Event": every periodic task whose cron matches the event's minute
  is queued (one rule `rate(1 minute)` serves them all). A rule or EventBridge Scheduler
  target can instead send the constant input `{"holdfast": {"periodic": "<task name>"}}`.

Queues are found in the registry every TaskQueue joins on creation: the app module must have
been imported (it has, once the adapter loaded the app).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from .executor import LeaseKeeper, execute
from .models import Delivery, Outcome
from .queue import TaskQueue, registered_queues
from .schedule import fire, fire_due
from .threads import ThreadRunner

logger = logging.getLogger("holdfast.tasks")

#: Messages of one batch that run at once.
CONCURRENCY = 10


def is_task_event(event: Any) -> bool:
    """True for events this module handles: holdfast SQS messages and task schedules."""
    return is_task_batch(event) or is_task_schedule(event)


def is_task_schedule(event: Any) -> bool:
    """True for a schedule of this app's periodic tasks (``holdfast.dispatch`` asks)."""
    if not isinstance(event, dict):
        return False
    if _named_periodic(event) is not None:
        return True
    return _is_scheduled(event) and any(queue.periodic_tasks for queue in registered_queues())


def is_task_batch(event: Any) -> bool:
    """True for an SQS batch carrying holdfast task messages (``holdfast.dispatch`` asks)."""
    if not isinstance(event, dict):
        return False
    records = event.get("Records")
    if not isinstance(records, list) or not records or not isinstance(records[0], dict):
        return False
    if records[0].get("eventSource") != "aws:sqs":
        return False
    return any(_queue_for(record) is not None for record in records if isinstance(record, dict))


def handle_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Synchronous `handle_event_async`, for a synchronous adapter."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(handle_event_async(event, context))
    # Called from code running inside an event loop: give the work a loop of its own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, handle_event_async(event, context)).result()


async def handle_event_async(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Handle a task event (see the module docs); never raises for one bad message."""
    name = _named_periodic(event)
    if name is not None:
        return await _fire_named(name)
    if _is_scheduled(event):
        return await _fire_scheduled(event)
    return await _consume_sqs(event.get("Records") or [])


# -- SQS --------------------------------------------------------------------------------------


def _queue_for(record: dict[str, Any]) -> TaskQueue | None:
    """The registered SQS-backed queue a record belongs to, by message attribute or ARN."""
    attributes = record.get("messageAttributes") or {}
    marked = (attributes.get("holdfast-queue") or {}).get("stringValue")
    source = str(record.get("eventSourceARN", "")).rsplit(":", 1)[-1]
    candidates = [q for q in registered_queues() if hasattr(q.backend, "accept")]
    for queue in candidates:
        same_queue = source and getattr(queue.backend, "sqs_queue_name", None) == source
        if same_queue and marked in (None, queue.name):
            return queue
    return next((q for q in candidates if q.name == marked), None)


async def _consume_sqs(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    failures: list[str] = []
    groups: dict[str, tuple[TaskQueue, list[dict[str, Any]]]] = {}
    for record in records:
        queue = _queue_for(record)
        if queue is None:
            logger.error("no task queue for SQS message %s", record.get("messageId"))
            failures.append(record.get("messageId", ""))
            continue
        groups.setdefault(queue.name, (queue, []))[1].append(record)
    for queue, group in groups.values():
        failures += await _consume(queue, group)
    return {"batchItemFailures": [{"itemIdentifier": mid} for mid in failures]}


async def _consume(queue: TaskQueue, records: list[dict[str, Any]]) -> list[str]:
    """Run one queue's records; returns the message ids to report as failures."""
    accepted = await asyncio.gather(*(_accept(queue, record) for record in records))
    failures = [r.get("messageId", "") for r, d in zip(records, accepted, strict=True) if d is None]
    deliveries = [d for d in accepted if d is not None]
    if not deliveries:
        return failures
    outcomes = await _run_all(queue, deliveries)
    settled = await asyncio.gather(*(_settle(queue, outcome) for outcome in outcomes))
    for outcome, consumed in zip(outcomes, settled, strict=True):
        if not consumed:  # Lambda will deliver it again: a retry, or one for the redrive
            failures.append(outcome.delivery.message_id or "")
    return failures


async def _settle(queue: TaskQueue, outcome: Outcome) -> bool:
    # One at a time per thread, all at once: each is a few round trips to AWS.
    try:
        [consumed] = await queue._call(queue.backend.settle, [outcome])
    except Exception:
        logger.exception("could not settle task %s", outcome.delivery.id)
        return False
    return consumed


async def _accept(queue: TaskQueue, record: dict[str, Any]) -> Delivery | None:
    try:
        return await asyncio.to_thread(
            queue.backend.accept,  # type: ignore[attr-defined]
            record["body"],
            record["receiptHandle"],
            record["messageId"],
            managed=True,
        )
    except Exception:
        logger.exception("could not start SQS message %s", record.get("messageId"))
        return None


async def _run_all(queue: TaskQueue, deliveries: list[Delivery]) -> list[Outcome]:
    keeper = LeaseKeeper(queue.backend, queue.visibility_timeout, queue._call)
    threads = ThreadRunner()
    slots = asyncio.Semaphore(CONCURRENCY)

    async def run(delivery: Delivery) -> Outcome:
        try:
            async with slots:
                return await execute(queue.tasks, delivery, threads=threads)
        finally:
            keeper.discard(delivery)

    for delivery in deliveries:  # waiting ones too: their visibility must not lapse
        keeper.add(delivery)

    renewing = asyncio.create_task(keeper.run())
    try:
        return list(await asyncio.gather(*(run(d) for d in deliveries)))
    finally:
        renewing.cancel()
        threads.shutdown()


# -- schedules --------------------------------------------------------------------------------


def _is_scheduled(event: dict[str, Any]) -> bool:
    return event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"


def _named_periodic(event: dict[str, Any]) -> str | None:
    marker = event.get("holdfast")
    if isinstance(marker, dict) and isinstance(marker.get("periodic"), str):
        return marker["periodic"]
    return None


async def _fire_scheduled(event: dict[str, Any]) -> dict[str, Any]:
    try:
        moment = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        moment = datetime.now(UTC)
    queued = []
    for queue in registered_queues():
        queued += [handle.id for handle in await fire_due(queue, moment)]
    if not queued:
        logger.info("scheduled event at %s: no periodic task due", moment.isoformat())
    return {"queued": queued}


async def _fire_named(name: str) -> dict[str, Any]:
    for queue in registered_queues():
        for periodic in queue.periodic_tasks:
            if periodic.name == name:
                handle = await fire(queue, periodic, datetime.now(UTC))
                return {"queued": [] if handle is None else [handle.id]}
    logger.error("scheduled event names unknown periodic task %r", name)
    return {"queued": [], "error": f"unknown periodic task {name!r}"}
