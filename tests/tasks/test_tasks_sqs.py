"""SQS delivery and DynamoDB status, through boto3 against a real moto server."""

from __future__ import annotations

import asyncio
import json
import time

import boto3
import pytest
from waiting import eventually, eventually_async

from holdfast.tasks import TaskQueue, TaskState
from holdfast.tasks.executor import execute
from moto_support import REGION
from task_support import run_until


def make_queue(aws, **kwargs) -> TaskQueue:
    queue = TaskQueue(aws.url(), endpoint_url=aws.endpoint, **kwargs)

    @queue.task(name="add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    return queue


def test_defer_run_and_status(aws):
    queue = make_queue(aws)
    handle = queue.tasks["add"].defer_sync(2, b=3)
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.QUEUED and status.task == "add"
    [message] = aws.receive(visibility=0)
    body = json.loads(message["Body"])
    assert body == {
        "holdfast": 1,
        "queue": "default",
        "task": "add",
        "id": handle.id,
        "args": [2, 3],  # bound to the signature: b is positional-or-keyword
        "kwargs": {},
        "run_at": body["run_at"],
    }
    assert message["MessageAttributes"]["holdfast-queue"]["StringValue"] == "default"

    [done] = asyncio.run(run_until(queue, [handle]))
    assert done.state is TaskState.SUCCEEDED and done.result == 5 and done.attempts == 1
    assert done.started_at is not None and done.finished_at is not None
    assert aws.receive() == []  # deleted after success
    assert [s.id for s in queue.list_sync(state="succeeded")] == [handle.id]
    assert queue.list_sync(task="other") == []


def test_retries_change_the_visibility(aws):
    queue = TaskQueue(aws.url(), endpoint_url=aws.endpoint)
    calls = []

    @queue.task(name="flaky", retries=2, backoff=0)
    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("upstream down")
        return "ok"

    [status] = asyncio.run(run_until(queue, [flaky.defer_sync()]))
    assert status.state is TaskState.SUCCEEDED and status.attempts == 3 and len(calls) == 3


def test_dead_messages_go_to_the_dead_letter_queue(aws_with_dlq):
    aws = aws_with_dlq
    queue = TaskQueue(aws.url(), endpoint_url=aws.endpoint)

    @queue.task(name="doomed", retries=1, backoff=0)
    def doomed() -> None:
        raise RuntimeError("always")

    handle = doomed.defer_sync()

    async def main():
        worker = queue.worker(poll_interval=0.05)
        running = asyncio.create_task(worker.run())
        status = await handle.wait(timeout=60)
        # The message was handed back for the redrive policy: the next receive moves it.
        await eventually_async(
            lambda: aws.receive(queue_url=aws.dlq_url, visibility=0),
            "the redrive policy moves the message to the dead-letter queue",
        )
        worker.stop()
        await running
        return status

    status = asyncio.run(main())
    assert status.state is TaskState.DEAD and status.attempts == 2
    assert status.error == "RuntimeError: always"
    assert aws.receive() == []


def test_dead_without_redrive_is_deleted(aws):
    queue = TaskQueue(aws.url(), endpoint_url=aws.endpoint)
    handle = queue.enqueue_sync("nobody-registered-this")
    [status] = asyncio.run(run_until(queue, [handle]))
    assert status.state is TaskState.DEAD and "UnknownTask" in status.error
    assert aws.receive(visibility=0) == []


def test_idempotency_key(aws):
    queue = make_queue(aws)
    add = queue.tasks["add"]
    first = add.options(idempotency_key="invoice-7").defer_sync(1)
    again = asyncio.run(add.options(idempotency_key="invoice-7").defer(2))
    assert again == first and not again.created
    assert len(aws.receive(visibility=0)) == 1  # one message only
    asyncio.run(run_until(queue, [first]))
    fresh = add.options(idempotency_key="invoice-7").defer_sync(3)
    assert fresh.created and fresh != first


def test_corrupt_message_does_not_block_the_batch(aws):
    queue = make_queue(aws)
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody="{not json")
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=json.dumps({"holdfast": 1}))
    handle = queue.tasks["add"].defer_sync(40, b=2)
    [status] = asyncio.run(run_until(queue, [handle]))
    assert status.result == 42
    assert aws.receive(visibility=0) == []  # no redrive policy: corrupt ones were deleted


def test_delay_beyond_the_sqs_maximum(aws):
    queue = make_queue(aws)
    later = queue.tasks["add"].options(delay=3600).defer_sync(1)
    assert aws.receive(visibility=0) == []  # sent with the longest SQS delay, 15 minutes
    # What the worker sees when that delay is over but the task is not due yet:
    body = {"holdfast": 1, "queue": "default", "task": "add", "id": later.id, "args": [1],
            "kwargs": {}, "run_at": time.time() + 2700}  # fmt: skip
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=json.dumps(body))
    [message] = aws.receive()
    delivery = queue.backend.accept(message["Body"], message["ReceiptHandle"], "m1")
    assert delivery.not_before == body["run_at"]
    settlement = asyncio.run(execute(queue.tasks, delivery))
    assert queue.backend.settle([settlement]) == [False]  # released, not consumed
    status = queue.status_sync(later.id)
    assert status.state is TaskState.QUEUED and status.attempts == 0  # not an attempt


def test_long_task_extends_its_visibility(aws):
    queue = TaskQueue(aws.url(), endpoint_url=aws.endpoint, visibility_timeout=2)
    ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=aws.endpoint)

    def lease_until() -> float:
        items = ddb.scan(TableName=aws.table, ConsistentRead=True)["Items"]
        [item] = [item for item in items if "lease_until" in item]  # the running task
        return float(item["lease_until"]["N"])

    @queue.task(name="long")
    async def long() -> str:
        # Run until renewals pushed the lease on and the first visibility (2 s) is over:
        # without the renewals SQS would have delivered the message again by then.
        first = lease_until()
        await eventually_async(
            lambda: time.time() > first + 1 and lease_until() > first + 1,
            "the lease is renewed past the first visibility timeout",
        )
        return "done"

    [status] = asyncio.run(run_until(queue, [long.defer_sync()]))
    assert status.state is TaskState.SUCCEEDED and status.attempts == 1


def test_periodic_slots_are_claimed_once(aws):
    queue = make_queue(aws)
    assert queue.backend.claim_slot("tick", 60.0)
    assert not queue.backend.claim_slot("tick", 60.0)
    assert queue.backend.claim_slot("tick", 120.0)
    assert not queue.backend.claim_slot("tick", 60.0)


def test_endpoint_from_environment(aws, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    queue = TaskQueue(aws.url())  # boto3 reads AWS_ENDPOINT_URL itself
    handle = queue.enqueue_sync("anything", [1])
    assert queue.status_sync(handle.id).state is TaskState.QUEUED


def not_running(queue: TaskQueue, task_id: str):
    status = queue.status_sync(task_id)
    return None if status.state is TaskState.RUNNING else status


def _delivered(queue: TaskQueue, aws, lease: float = 30):
    [delivery] = queue.backend.claim(1, lease)
    return delivery


def test_a_superseded_attempts_failure_is_dropped_but_its_success_wins(aws):
    from holdfast.tasks.models import Settlement

    queue = make_queue(aws)
    handle = queue.tasks["add"].defer_sync(1)
    first = _delivered(queue, aws, lease=1)
    # Its visibility lapses: SQS delivers the message again.
    [second] = eventually(lambda: queue.backend.claim(1, 30), "the message is delivered again")
    assert (first.attempt, second.attempt) == (1, 2)
    queue.backend.settle([Settlement(first, TaskState.RETRYING, error="stale", run_at=0)])
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.RUNNING and status.error is None  # second still owns it
    queue.backend.settle([Settlement(first, TaskState.SUCCEEDED, result="1")])
    queue.backend.settle([Settlement(second, TaskState.DEAD, error="late")])
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.SUCCEEDED and status.result == 1  # it did run and succeed


def test_settling_twice_is_idempotent(aws):
    from holdfast.tasks.models import Settlement

    queue = make_queue(aws)
    handle = queue.tasks["add"].defer_sync(1)
    delivery = _delivered(queue, aws)
    settlement = Settlement(delivery, TaskState.RETRYING, error="E: once", run_at=time.time() + 60)
    assert queue.backend.settle([settlement]) == [False]
    assert queue.backend.settle([settlement]) == [False]
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.RETRYING and status.error == "E: once"


def test_a_lost_worker_reads_as_retrying_then_dead_on_the_last_receive(aws_with_dlq):
    aws = aws_with_dlq  # maxReceiveCount 2
    queue = make_queue(aws)
    handle = queue.tasks["add"].defer_sync(1)
    first = _delivered(queue, aws, lease=1)  # its worker is "killed": nothing settles it
    assert first.receives == 1
    assert queue.status_sync(handle.id).state is TaskState.RUNNING
    status = eventually(  # once the lease and the grace period lapse
        lambda: not_running(queue, handle.id), "the lapsed lease reads as lost"
    )
    assert status.state is TaskState.RETRYING
    assert status.error == "WorkerLost: the lease of attempt 1 expired"
    assert [s.id for s in queue.list_sync(state="retrying")] == [handle.id]
    second = _delivered(queue, aws, lease=1)  # the last receive the redrive policy allows
    assert second.receives == 2
    status = eventually(lambda: not_running(queue, handle.id), "the last lease reads as lost")
    assert status.state is TaskState.DEAD and "last allowed receive" in status.error
    assert aws.receive() == []  # SQS moved it to the dead-letter queue on this receive
    assert [_body_id(m) for m in aws.receive(queue_url=aws.dlq_url)] == [handle.id]


def test_a_failure_on_the_last_receive_is_dead_not_retrying(aws_with_dlq):
    aws = aws_with_dlq  # maxReceiveCount 2
    queue = TaskQueue(aws.url(), endpoint_url=aws.endpoint)

    @queue.task(name="flaky", retries=5, backoff=0)
    def flaky() -> None:
        raise ConnectionError("down")

    handle = flaky.defer_sync()
    status = asyncio.run(run_until(queue, [handle]))[0]
    assert status.state is TaskState.DEAD and status.attempts == 2
    assert status.error.startswith("ConnectionError: down; no retry: the message was received 2")


def _body_id(message: dict) -> str:
    return json.loads(message["Body"])["id"]


def test_maintenance_marks_tasks_whose_message_was_dead_lettered(aws_with_dlq):
    aws = aws_with_dlq  # maxReceiveCount 2
    queue = make_queue(aws)
    done = queue.tasks["add"].defer_sync(2)
    [message] = aws.receive(visibility=0)
    asyncio.run(run_until(queue, [done]))
    # A success whose message still reached the DLQ (its worker died before deleting it).
    aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody=message["Body"])
    aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody="not a task")
    handle = queue.tasks["add"].defer_sync(1)
    for _ in range(2):  # two receives no worker recorded (killed during a long poll)
        assert aws.receive(visibility=0) != []
    assert aws.receive() == []  # the third receive moved it to the dead-letter queue
    assert queue.status_sync(handle.id).state is TaskState.QUEUED
    queue.backend.reconcile_every = 0  # the worker above looked a moment ago
    queue.backend.maintain()
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.DEAD
    assert status.error.startswith("DeadLettered: the redrive policy moved the message")
    assert queue.status_sync(done.id).state is TaskState.SUCCEEDED  # final statuses stay
    # The dead-letter queue still holds every message, visible to its own consumers.
    bodies = [m["Body"] for m in aws.receive(queue_url=aws.dlq_url)]
    assert len(bodies) == 3 and "not a task" in bodies


def test_a_message_too_large_for_sqs_is_refused_before_anything_is_stored(aws):
    from holdfast.tasks import InvalidArguments
    from holdfast.tasks.sqs import MAX_MESSAGE_BYTES

    queue = make_queue(aws)
    with pytest.raises(InvalidArguments, match="SQS takes at most"):
        queue.enqueue_sync("blob", ["x" * MAX_MESSAGE_BYTES])
    assert queue.list_sync() == []
    assert aws.receive(visibility=0) == []


def test_a_deeply_nested_message_body_is_dead_not_redelivered_forever(aws):
    queue = make_queue(aws)
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody="[" * 100_000 + "]" * 100_000)
    handle = queue.tasks["add"].defer_sync(1, b=1)
    [status] = asyncio.run(run_until(queue, [handle]))
    assert status.result == 2
    assert aws.receive(visibility=0) == []  # no redrive policy: deleted, not a loop


def test_a_finished_status_expires_by_the_tables_ttl_after_the_kept_time(aws):
    # The template's table has TTL on `expires_at`: a finished task's record must carry it
    # (`keep` seconds past its finish), and one still in flight must not, or TTL would delete
    # the status of a task that has yet to run.
    queue = TaskQueue(aws.url() + "&keep=3600", endpoint_url=aws.endpoint)

    @queue.task(name="add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    handle = queue.tasks["add"].defer_sync(1, b=2)
    ddb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=aws.endpoint)
    item = ddb.get_item(TableName=aws.table, Key={"id": {"S": handle.id}})["Item"]
    assert "expires_at" not in item
    [done] = asyncio.run(run_until(queue, [handle]))
    assert done.state is TaskState.SUCCEEDED
    item = ddb.get_item(TableName=aws.table, Key={"id": {"S": handle.id}})["Item"]
    expires_at = int(item["expires_at"]["N"])
    assert abs(expires_at - (done.finished_at.timestamp() + 3600)) <= 2


def test_settled_messages_are_deleted_ten_to_a_call_and_a_refused_delete_is_not_consumed(aws):
    import dataclasses

    from holdfast.tasks.models import Settlement

    queue = make_queue(aws)
    for number in range(12):
        queue.tasks["add"].defer_sync(number)
    deliveries: list = []
    eventually(
        lambda: deliveries.extend(queue.backend.claim(10, 30)) or len(deliveries) == 12 or None,
        "every message is received",
    )
    # A receipt handle SQS does not know (as after the message was deleted elsewhere).
    stale = dataclasses.replace(deliveries[0], token="not-a-receipt-handle")
    calls: list[str] = []
    queue.backend._sqs.meta.events.register(
        "before-call.sqs.*", lambda model, **_: calls.append(model.name)
    )
    settlements = [Settlement(d, TaskState.SUCCEEDED, result="1") for d in [*deliveries, stale]]

    consumed = queue.backend.settle(settlements)

    assert consumed == [True] * 12 + [False]
    assert sorted(calls) == ["DeleteMessageBatch", "DeleteMessageBatch"]
    assert aws.receive(visibility=0) == []
    assert {s.state for s in queue.list_sync()} == {TaskState.SUCCEEDED}
