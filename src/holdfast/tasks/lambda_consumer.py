"""Running tasks inside a Lambda function: SQS batches of task messages, and schedules.

`holdfast.dispatch` names an event's kind once; for the two kinds that belong to the task
queue it asks the predicates here and calls the matching entry point:

* `is_task_batch(event)` / `await handle_task_batch(event, context)`: an SQS event whose
  records come from the SQS queue of a registered `sqs://` TaskQueue. Every message runs
  (concurrently, the visibility of long ones extended while they run) and the answer is
  `{"batchItemFailures": [...]}`, naming the messages to deliver again: retries (their
  visibility set to the backoff), dead ones left for the redrive policy, and any message that
  could not be started. Enable `ReportBatchItemFailures` on the event source mapping.
* `is_task_schedule(event)` / `await handle_task_schedule(event, context)`: an EventBridge
  "Scheduled Event" when some registered queue has periodic tasks (every periodic task whose
  cron matches the event's minute is queued; one rule `rate(1 minute)` serves them all), or the
  constant input `{"holdfast": {"periodic": "<task name>"}}` of a rule or EventBridge
  Scheduler target. The answer is `{"queued": [task ids]}`.

Both predicates are cheap and never raise. Queues are found in the registry every TaskQueue
joins on creation: the app module must have been imported (it has, once the app was loaded).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .executor import LeaseKeeper, execute
from .models import Delivery, Settlement
from .queue import TaskQueue, registered_queues
from .schedule import fire, fire_due
from .sqs import MESSAGE_ATTRIBUTE, SQSBackend
from .threads import ThreadRunner

logger = logging.getLogger("holdfast.tasks")

#: Messages of one batch that run at once.
CONCURRENCY = 10


def is_task_batch(event: object) -> bool:
    """True for an SQS event from the SQS queue of a registered `sqs://` TaskQueue."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records or not isinstance(records[0], dict):
        return False
    first = records[0]
    # One event source mapping reads one SQS queue: the first record names it.
    return first.get("eventSource") == "aws:sqs" and _queue_for(first) is not None


def is_task_schedule(event: object) -> bool:
    """True for a schedule of the task queue: an EventBridge Scheduled Event while some
    registered queue has periodic tasks, or `{"holdfast": {"periodic": "<name>"}}`."""
    if not isinstance(event, dict):
        return False
    if _named_periodic(event) is not None:
        return True
    return _is_scheduled(event) and any(queue.periodic_tasks for queue in registered_queues())


async def handle_task_batch(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Run an SQS batch of task messages; never raises for one bad message."""
    records = event.get("Records")
    return await _consume_sqs(records if isinstance(records, list) else [])


async def handle_task_schedule(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Queue the periodic tasks a schedule event is for."""
    name = _named_periodic(event)
    if name is not None:
        return await _fire_named(name)
    return await _fire_scheduled(event)


# -- SQS --------------------------------------------------------------------------------------


def _queue_for(record: Mapping[str, Any]) -> TaskQueue | None:
    """The registered `sqs://` queue a record comes from (by the SQS queue in its ARN; the
    `holdfast-queue` message attribute picks one when several share that SQS queue)."""
    source = str(record.get("eventSourceARN", "")).rsplit(":", 1)[-1]
    if not source:
        return None
    attributes = record.get("messageAttributes")
    marker = attributes.get(MESSAGE_ATTRIBUTE) if isinstance(attributes, dict) else None
    marked = marker.get("stringValue") if isinstance(marker, dict) else None
    sharing = [
        queue
        for queue in registered_queues()
        if isinstance(queue.backend, SQSBackend) and queue.backend.sqs_queue_name == source
    ]
    return next((q for q in sharing if q.name == marked), sharing[0] if sharing else None)


async def _consume_sqs(records: Sequence[object]) -> dict[str, Any]:
    failures: list[str] = []
    groups: dict[str, tuple[TaskQueue, list[dict[str, Any]]]] = {}
    for record in records:
        if not isinstance(record, dict):
            logger.error("an SQS record that is not an object: %.60r", record)
            continue  # no messageId to report: Lambda would fail the whole batch on ""
        queue = _queue_for(record)
        if queue is None:
            logger.error("no task queue for SQS message %s", record.get("messageId"))
            failures.append(str(record.get("messageId", "")))
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
    settlements = await _run_all(queue, deliveries)
    settled = await asyncio.gather(*(_settle(queue, settlement) for settlement in settlements))
    for settlement, consumed in zip(settlements, settled, strict=True):
        if not consumed:  # Lambda will deliver it again: a retry, or one for the redrive
            failures.append(settlement.delivery.message_id or "")
    return failures


async def _settle(queue: TaskQueue, settlement: Settlement) -> bool:
    # One at a time per thread, all at once: each is a few round trips to AWS.
    try:
        [consumed] = await queue.async_backend.settle([settlement])
    except Exception:
        logger.exception("could not settle task %s", settlement.delivery.id)
        return False
    return consumed


async def _accept(queue: TaskQueue, record: dict[str, Any]) -> Delivery | None:
    backend = queue.backend
    assert isinstance(backend, SQSBackend)  # _queue_for picked only those
    try:
        return await asyncio.to_thread(
            backend.accept,
            record["body"],
            record["receiptHandle"],
            record["messageId"],
            managed=True,
            lease=queue.visibility_timeout,
            receive_count=_receive_count(record),
        )
    except Exception:
        logger.exception("could not start SQS message %s", record.get("messageId"))
        return None


async def _run_all(queue: TaskQueue, deliveries: list[Delivery]) -> list[Settlement]:
    keeper = LeaseKeeper(queue.async_backend, queue.visibility_timeout)
    threads = ThreadRunner()
    slots = asyncio.Semaphore(CONCURRENCY)

    async def run(delivery: Delivery) -> Settlement:
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


def _receive_count(record: Mapping[str, Any]) -> int | None:
    attributes = record.get("attributes")
    count = attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    try:
        return int(count) if count is not None else None
    except (TypeError, ValueError):
        return None


def _is_scheduled(event: Mapping[str, Any]) -> bool:
    return event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"


def _named_periodic(event: Mapping[str, Any]) -> str | None:
    marker = event.get("holdfast")
    name = marker.get("periodic") if isinstance(marker, dict) else None
    return name if isinstance(name, str) else None


async def _fire_scheduled(event: Mapping[str, Any]) -> dict[str, Any]:
    try:
        moment = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        moment = datetime.now(UTC)
    queued = []
    for queue in registered_queues():
        queued += [handle.id for handle in await fire_due(queue, moment)]
        # No worker runs maintenance on Lambda: the schedule does (it reconciles statuses
        # with the dead-letter queue on SQS).
        try:
            await queue.async_backend.maintain()
        except Exception:
            logger.exception("maintenance of task queue %s failed", queue.name)
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
