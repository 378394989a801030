"""The Lambda consumer: SQS batches answer batchItemFailures; EventBridge runs periodic tasks."""

from __future__ import annotations

import asyncio
import json

from task_events import SCHEDULED

from holdfast.tasks import TaskQueue, TaskState
from holdfast.tasks.lambda_consumer import (
    handle_task_batch,
    handle_task_schedule,
    is_task_batch,
    is_task_schedule,
)


def is_task_event(event) -> bool:
    return is_task_batch(event) or is_task_schedule(event)


def handle_event(event, context=None) -> dict:
    """What the Adapter does with the kind holdfast.dispatch named."""
    entry = handle_task_schedule if is_task_schedule(event) else handle_task_batch
    return asyncio.run(entry(event, context))


def make_queue(aws, **kwargs) -> TaskQueue:
    queue = TaskQueue(aws.url(), endpoint_url=aws.endpoint, name="jobs", **kwargs)

    @queue.task(name="double")
    def double(n: int) -> int:
        return 2 * n

    @queue.task(name="flaky", retries=2, backoff=30)
    async def flaky() -> None:
        raise ConnectionError("try later")

    @queue.task(name="fatal", retries=0)
    def fatal() -> None:
        raise RuntimeError("no luck")

    return queue


def test_batch_reports_only_the_messages_to_retry(aws_with_dlq):
    aws = aws_with_dlq
    queue = make_queue(aws)
    good = queue.tasks["double"].defer_sync(21)
    retry = queue.tasks["flaky"].defer_sync()
    dead = queue.tasks["fatal"].defer_sync()
    unknown = queue.enqueue_sync("vanished")
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody="garbage")
    messages = aws.receive()
    assert len(messages) == 5
    event = aws.lambda_event(messages)
    assert is_task_event(event)

    response = handle_event(event, None)

    task_of = {m["MessageId"]: _task_id(m["Body"]) for m in messages}
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    # Success is left for Lambda to delete; retries and dead ones come back (DLQ redrive).
    assert {task_of[m] for m in failed} == {retry.id, dead.id, unknown.id, "garbage"}
    assert queue.status_sync(good.id).result == 42
    status = queue.status_sync(retry.id)
    assert status.state is TaskState.RETRYING and status.error == "ConnectionError: try later"
    assert queue.status_sync(dead.id).state is TaskState.DEAD
    assert "UnknownTask" in queue.status_sync(unknown.id).error
    # The retry is hidden for its backoff; the dead ones are visible again for the redrive.
    visible = {task_of[m["MessageId"]] for m in aws.receive(visibility=0)}
    assert visible == {dead.id, unknown.id, "garbage"}


def _task_id(body: str) -> str:
    try:
        return json.loads(body)["id"]
    except ValueError:
        return body


def test_redelivered_success_is_not_run_again(aws):
    queue = make_queue(aws)
    runs = []
    queue._tasks["double"].fn = lambda n: runs.append(n) or 2 * n
    handle = queue.tasks["double"].defer_sync(5)
    [message] = aws.receive(visibility=0)
    event = aws.lambda_event([message])
    assert handle_event(event) == {"batchItemFailures": []}
    assert handle_event(event) == {"batchItemFailures": []}  # SQS delivered it twice
    assert runs == [5]
    assert queue.status_sync(handle.id).attempts == 1


def test_async_entry_point_and_long_task_visibility(aws):
    queue = make_queue(aws, visibility_timeout=2)

    @queue.task(name="long")
    async def long() -> str:
        await asyncio.sleep(3)
        return "done"

    handle = long.defer_sync()
    event = aws.lambda_event(aws.receive(visibility=2))

    async def main():
        consumer = asyncio.create_task(handle_task_batch(event, None))
        # While it runs, the renewed visibility hides the message from other consumers.
        seen = []
        while not consumer.done():
            seen += aws.receive(visibility=2)
            await asyncio.sleep(0.25)
        return await consumer, seen

    response, seen = asyncio.run(main())
    assert response == {"batchItemFailures": []}
    assert seen == []
    assert queue.status_sync(handle.id).attempts == 1


def test_is_task_event_rejects_other_events(aws):
    make_queue(aws)
    assert not is_task_event({"httpMethod": "GET", "path": "/"})
    assert not is_task_event({"Records": [{"eventSource": "aws:s3"}]})
    assert not is_task_event(
        {"Records": [{"eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:r:1:other"}]}
    )
    assert not is_task_event(SCHEDULED)  # no periodic task registered
    assert not is_task_event(None)
    assert is_task_event(
        {"Records": [{"eventSource": "aws:sqs", "eventSourceARN": aws.queue_arn, "body": "x"}]}
    )


def test_unroutable_records_are_failures(aws):
    make_queue(aws)
    event = {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r",
                "body": "{}",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:unknown-queue",
            }
        ]
    }
    assert handle_event(event) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


def test_scheduled_event_queues_matching_periodic_tasks(sqlite_url):
    queue = TaskQueue(sqlite_url)
    ran = []

    @queue.periodic("*/5 * * * *", name="every-five")
    def every_five() -> str:
        ran.append("five")
        return "tick"

    @queue.periodic("0 * * * *", name="hourly")
    def hourly() -> None:
        ran.append("hourly")

    assert is_task_event(SCHEDULED)
    first = handle_event(SCHEDULED)
    assert len(first["queued"]) == 1  # 05:10 matches */5, not the hourly one
    assert handle_event(SCHEDULED) == {"queued": []}  # same slot: EventBridge retried it
    asyncio.run(queue.worker().run(burst=True))
    assert ran == ["five"]
    assert queue.status_sync(first["queued"][0]).result == "tick"


def test_named_periodic_input(sqlite_url):
    queue = TaskQueue(sqlite_url)

    @queue.periodic("0 3 * * *", name="nightly")
    def nightly() -> str:
        return "cleaned"

    event = {"holdfast": {"periodic": "nightly"}}
    assert is_task_event(event)
    [task_id] = handle_event(event)["queued"]
    assert queue.status_sync(task_id).task == "nightly"
    assert handle_event({"holdfast": {"periodic": "missing"}})["queued"] == []


def test_predicates_tell_batches_from_schedules(aws, sqlite_url):
    make_queue(aws)
    batch = {"Records": [{"eventSource": "aws:sqs", "eventSourceARN": aws.queue_arn}]}
    assert is_task_batch(batch) and not is_task_schedule(batch)
    named = {"holdfast": {"periodic": "nightly"}}
    assert is_task_schedule(named) and not is_task_batch(named)
    assert not is_task_schedule(SCHEDULED)  # no periodic task registered anywhere
    periodic = TaskQueue(sqlite_url, name="cron")
    periodic.periodic("@daily", name="daily")(lambda: None)
    assert is_task_schedule(SCHEDULED) and not is_task_batch(SCHEDULED)
    for odd in (None, [], "x", {"Records": "x"}, {"Records": [1]}, {"holdfast": {"periodic": 3}}):
        assert not is_task_batch(odd) and not is_task_schedule(odd)


def test_entry_points_run_each_kind(aws):
    queue = make_queue(aws)
    handle = queue.tasks["double"].defer_sync(4)
    event = aws.lambda_event(aws.receive())
    event["Records"].append("not a record")  # skipped: it has no messageId to report
    assert asyncio.run(handle_task_batch(event)) == {"batchItemFailures": []}
    assert queue.status_sync(handle.id).result == 8
