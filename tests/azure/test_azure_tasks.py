"""Azure Queue Storage delivery and Table Storage status, through the Azure SDK against Azurite."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from holdfast.tasks import InvalidArguments, TaskQueue, TaskState
from holdfast.tasks.azure import MAX_JSON_BYTES, MAX_SPILLED_CHARS, AzureBackend
from holdfast.tasks.errors import BackendError
from holdfast.tasks.models import Settlement
from task_support import run_until


def make_queue(storage, **kwargs) -> TaskQueue:
    queue = storage.task_queue(**kwargs)

    @queue.task(name="add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    @queue.task(name="size")
    def size(blob: str) -> int:
        return len(blob)

    return queue


def _claim(queue: TaskQueue, lease: float = 30):
    deliveries = queue.backend.claim(1, lease)
    assert len(deliveries) == 1, deliveries
    return deliveries[0]


def test_defer_run_and_status(storage):
    queue = make_queue(storage)
    handle = queue.tasks["add"].defer_sync(2, b=3)
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.QUEUED and status.task == "add"
    [body] = storage.peek()
    message = json.loads(body)  # base64 on the wire, as the Functions queue trigger expects
    assert message == {
        "holdfast": 1,
        "queue": "default",
        "task": "add",
        "id": handle.id,
        "args": [2, 3],
        "kwargs": {},
        "run_at": message["run_at"],
    }
    [done] = asyncio.run(run_until(queue, [handle]))
    assert done.state is TaskState.SUCCEEDED and done.result == 5 and done.attempts == 1
    assert done.started_at is not None and done.finished_at is not None
    assert storage.peek() == []  # deleted after success
    assert [s.id for s in queue.list_sync(state="succeeded")] == [handle.id]
    assert queue.list_sync(task="other") == []


def test_retries_send_a_delayed_copy(storage):
    queue = storage.task_queue()
    calls = []

    @queue.task(name="flaky", retries=2, backoff=0)
    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("upstream down")
        return "ok"

    [status] = asyncio.run(run_until(queue, [flaky.defer_sync()]))
    assert status.state is TaskState.SUCCEEDED and status.attempts == 3 and len(calls) == 3
    assert storage.peek() == []


def test_a_retry_waits_for_its_backoff(storage):
    queue = make_queue(storage)
    handle = queue.tasks["add"].defer_sync(1)
    delivery = _claim(queue)
    settlement = Settlement(delivery, TaskState.RETRYING, error="E: later", run_at=time.time() + 60)
    assert queue.backend.settle([settlement]) == [True]
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.RETRYING and status.error == "E: later"
    assert storage.peek() == []  # the copy is invisible until its backoff is over
    assert queue.backend.claim(1, 30) == []


def test_dead_tasks_go_to_the_poison_queue(storage):
    queue = storage.task_queue()

    @queue.task(name="doomed", retries=1, backoff=0)
    def doomed() -> None:
        raise RuntimeError("always")

    handle = doomed.defer_sync()
    [status] = asyncio.run(run_until(queue, [handle]))
    assert status.state is TaskState.DEAD and status.attempts == 2
    assert status.error == "RuntimeError: always"
    assert storage.peek() == []
    [poisoned] = storage.peek(storage.poison)
    assert json.loads(poisoned)["id"] == handle.id


def test_unknown_task_is_dead(storage):
    queue = storage.task_queue()
    handle = queue.enqueue_sync("nobody-registered-this")
    [status] = asyncio.run(run_until(queue, [handle]))
    assert status.state is TaskState.DEAD and "UnknownTask" in status.error


def test_idempotency_key(storage):
    queue = make_queue(storage)
    first = queue.enqueue_sync("add", [1], idempotency_key="order-7")
    again = queue.enqueue_sync("add", [1], idempotency_key="order-7")
    assert again.id == first.id and not again.created
    assert len(storage.peek()) == 1 and len(queue.list_sync()) == 1
    asyncio.run(run_until(queue, [first]))
    later = queue.enqueue_sync("add", [1], idempotency_key="order-7")
    assert later.id != first.id and later.created  # the first one finished


def test_corrupt_messages_go_to_the_poison_queue_and_the_batch_runs(storage):
    queue = make_queue(storage)
    raw = storage.queue_client()
    raw.send_message("not json")
    raw.send_message("[" * 20_000 + "]" * 20_000)  # fits 64 KiB, nests too deep
    raw.send_message(
        json.dumps({"holdfast": 1, "id": "../x", "task": "add", "args": [], "kwargs": {}})
    )
    handle = queue.tasks["add"].defer_sync(1, b=1)
    [status] = asyncio.run(run_until(queue, [handle]))
    assert status.result == 2

    assert storage.peek() == []  # sent before the task: received and settled before it
    assert "not json" in storage.peek(storage.poison)  # copied as it was


def test_arguments_beyond_the_64kb_message_ride_in_the_status_entity(storage):
    queue = make_queue(storage)
    blob = "é" * (MAX_JSON_BYTES // 2 + 10)  # > 48 KiB of JSON, > 64 KiB once base64
    handle = queue.tasks["size"].defer_sync(blob)
    [body] = storage.peek()
    assert "args" not in json.loads(body) and json.loads(body)["payload"] == "entity"
    [status] = asyncio.run(run_until(queue, [handle]))
    assert status.state is TaskState.SUCCEEDED and status.result == len(blob)


def test_arguments_too_large_even_for_the_entity_are_refused_before_anything_is_stored(storage):
    queue = make_queue(storage)
    with pytest.raises(InvalidArguments, match="pass a reference to large data"):
        queue.tasks["size"].defer_sync("x" * (MAX_SPILLED_CHARS + 1))
    assert queue.list_sync() == []
    assert storage.peek() == []


def test_a_large_result_is_split_over_properties(storage):
    queue = storage.task_queue()

    @queue.task(name="big")
    def big() -> str:
        return "r" * 100_000

    [status] = asyncio.run(run_until(queue, [big.defer_sync()]))
    assert status.state is TaskState.SUCCEEDED and status.result == "r" * 100_000


def test_a_delay_beyond_the_visibility_maximum_waits(storage, monkeypatch):
    import holdfast.tasks.azure as backend_module

    monkeypatch.setattr(backend_module, "MAX_VISIBILITY", 2)  # 7 days, shortened for the test
    queue = make_queue(storage)
    handle = queue.enqueue_sync("add", [1], delay=3600)
    time.sleep(1.2)
    delivery = _claim(queue)
    assert delivery.not_before is not None  # delivered early: released again, not run
    settlement = Settlement(delivery, TaskState.QUEUED, run_at=delivery.not_before, write=False)
    assert queue.backend.settle([settlement]) == [True]
    assert queue.status_sync(handle.id).state is TaskState.QUEUED
    assert queue.backend.claim(1, 30) == []  # the copy is invisible again


def test_long_task_extends_its_visibility(storage):
    queue = make_queue(storage)
    handle = queue.tasks["add"].defer_sync(1)
    delivery = _claim(queue, lease=1)
    first_receipt = delivery.token
    queue.backend.extend([delivery], 30)
    assert delivery.token != first_receipt  # Azure hands out a new pop receipt
    time.sleep(1.5)
    assert queue.backend.claim(1, 30) == []  # still invisible: the lease was renewed
    assert queue.status_sync(handle.id).state is TaskState.RUNNING
    assert queue.backend.settle([Settlement(delivery, TaskState.SUCCEEDED, result="1")]) == [True]
    assert storage.peek() == []  # deleted with the renewed receipt


def test_a_superseded_attempts_failure_is_dropped_but_its_success_wins(storage):
    queue = make_queue(storage)
    handle = queue.tasks["add"].defer_sync(1)
    first = _claim(queue, lease=1)
    time.sleep(1.2)  # its visibility lapses: the message is delivered again
    second = _claim(queue)
    assert (first.attempt, second.attempt) == (1, 2)
    queue.backend.settle([Settlement(first, TaskState.FAILED, error="stale")])
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.RUNNING and status.error is None  # second owns it
    queue.backend.settle([Settlement(first, TaskState.SUCCEEDED, result="1")])
    queue.backend.settle([Settlement(second, TaskState.DEAD, error="late")])
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.SUCCEEDED and status.result == 1


def test_a_lost_worker_reads_as_retrying_then_dead_on_the_last_dequeue(storage):
    queue = TaskQueue(storage.url(max_dequeue=2))
    queue.backend.create()
    queue.task(name="add")(lambda a: a)
    handle = queue.enqueue_sync("add", [1])
    first = _claim(queue, lease=1)  # its worker is "killed": nothing settles it
    assert first.receives == 1
    time.sleep(1 + 2.1)  # the lease and the grace period lapse
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.RETRYING
    assert status.error == "WorkerLost: the lease of attempt 1 expired"
    second = _claim(queue, lease=1)
    assert second.receives == 2
    time.sleep(1 + 2.1)
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.DEAD and "last allowed dequeue" in status.error
    # The next dequeue is over the limit: the worker moves it to the poison queue.
    third = _claim(queue)
    assert third.error is not None and third.error.startswith("DeadLettered: the message was")
    from holdfast.tasks.executor import execute

    settlement = asyncio.run(execute(queue.tasks, third))  # what a worker does with it
    assert queue.backend.settle([settlement]) == [True]
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.DEAD and status.error.startswith("DeadLettered")
    assert [json.loads(m)["id"] for m in storage.peek(storage.poison)] == [handle.id]
    assert storage.peek() == []


def test_maintenance_marks_tasks_the_trigger_moved_to_the_poison_queue(storage):
    queue = make_queue(storage)
    done = queue.tasks["add"].defer_sync(2)
    [body] = storage.peek()
    asyncio.run(run_until(queue, [done]))
    handle = queue.tasks["add"].defer_sync(1)
    [pending] = [m for m in storage.peek() if json.loads(m)["id"] == handle.id]
    poison = storage.queue_client(storage.poison)
    for text in (body, pending, "not a task"):  # what the Functions host moves there
        poison.send_message(text)
    queue.backend.reconcile_every = 0
    queue.backend.maintain()
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.DEAD and status.error.startswith("DeadLettered")
    assert queue.status_sync(done.id).state is TaskState.SUCCEEDED  # final statuses stay
    assert len(storage.peek(storage.poison)) == 3  # peeked, never taken


def test_periodic_slots_are_claimed_once(storage):
    queue = make_queue(storage)
    assert queue.backend.claim_slot("nightly", 100.0)
    assert not queue.backend.claim_slot("nightly", 100.0)
    assert queue.backend.claim_slot("nightly", 160.0)
    assert not queue.backend.claim_slot("nightly", 130.0)


def test_status_of_ids_holdfast_never_makes_is_none(storage):
    queue = make_queue(storage)
    for task_id in ("../etc", "a/b", "x" * 200, "", "it's"):
        assert queue.status_sync(task_id) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("azure://q", "azure:// URLs are"),
        ("azure://?table=t", "azure:// URLs are"),
        ("azure://q?table=t&connection=HOLDFAST_NO_SUCH_VARIABLE", "set HOLDFAST_NO_SUCH_VARIABLE"),
    ],
)
def test_bad_urls_are_refused_clearly(url, problem):
    with pytest.raises(BackendError, match=problem):
        TaskQueue(url)


def test_the_connection_string_comes_from_the_named_variable(storage, monkeypatch):
    monkeypatch.delenv("AzureWebJobsStorage")
    monkeypatch.setenv("MY_STORAGE", storage.connection)
    queue = TaskQueue(storage.url(connection="MY_STORAGE"))
    assert isinstance(queue.backend, AzureBackend)
    queue.backend.create()
    handle = queue.enqueue_sync("add", [1])
    assert queue.status_sync(handle.id).state is TaskState.QUEUED


def test_durable_after_response_work_is_refused_clearly(storage):
    """Azure's retries are new copies of a message, so a write-ahead's delayed copy would run
    twice: ``after_response(task, ..., durable=True)`` refuses an azure:// queue, in the
    endpoint, before anything is stored."""
    import holdfast
    from holdfast.tasks import BackendError

    queue = TaskQueue(storage.url())

    @queue.task(name="noop")
    async def noop() -> None: ...

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        try:
            holdfast.after_response(noop, durable=True)
            body = b"accepted"
        except BackendError as exc:
            body = str(exc).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    from lambda_events import http_event

    class Context:
        aws_request_id = "req-1"

        def get_remaining_time_in_millis(self) -> int:
            return 30_000

    adapter = holdfast.Adapter(app, lifespan="off")
    try:
        answer = adapter(http_event("/"), Context())
    finally:
        adapter.close()
    assert "not supported on azure://" in answer["body"]
