"""The queue trigger of an azure:// task queue, called as the worker calls it: with the
`azure.functions.QueueMessage` the Functions host built from a real Azurite message (base64
decoded, as the trigger's default `messageEncoding` does). The host's part after the function
(delete on return, redeliver on raise) is played here by the test."""

from __future__ import annotations

import asyncio
import json

import pytest
from azure.functions.queue import QueueMessage  # what the worker's queue converter builds

import holdfast.azure
from holdfast.tasks import TaskState


def _received(storage) -> QueueMessage:
    """What the host hands the function: the next message, received and kept invisible."""
    client = storage.queue_client()
    [message] = list(client.receive_messages(max_messages=1, visibility_timeout=60))
    return QueueMessage(
        id=message.id,
        body=message.content.encode(),
        pop_receipt=message.pop_receipt,
        dequeue_count=message.dequeue_count,
    )


def _host_deletes(storage, message: QueueMessage) -> None:
    storage.queue_client().delete_message(message.id, message.pop_receipt)


def _trigger(app, queue) -> object:
    name = f"holdfast_tasks_{queue.name}"
    [function] = [f for f in app.get_functions() if f.get_function_name() == name]
    return function


@pytest.fixture
def shop(storage):
    queue = storage.task_queue(name="shop")
    calls: list[str] = []

    @queue.task(name="report", retries=1, backoff=0)
    async def report(month: str) -> dict:
        calls.append(month)
        if month == "never":
            raise LookupError("no such month")
        return {"month": month}

    app = holdfast.azure.FunctionApp(lambda scope, receive, send: None, task_queues=[queue])
    return app, queue, calls


def test_the_trigger_is_indexed_on_the_storage_queue(shop, storage):
    app, queue, _ = shop
    bindings = json.loads(_trigger(app, queue).get_function_json())["bindings"]
    assert bindings == [
        {
            "direction": "IN",
            "type": "queueTrigger",
            "name": "msg",
            "queueName": storage.queue_name,
            "connection": "AzureWebJobsStorage",
        }
    ]


def test_a_task_runs_in_the_trigger_and_the_host_deletes_it(shop, storage):
    app, queue, calls = shop
    handle = queue.enqueue_sync("report", ["2026-11"])
    message = _received(storage)
    function = _trigger(app, queue).get_user_function()
    asyncio.run(function(message))  # returns normally: the host deletes the message
    _host_deletes(storage, message)
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.SUCCEEDED and status.result == {"month": "2026-11"}
    assert calls == ["2026-11"] and storage.peek() == []


def test_a_failing_task_is_retried_by_a_copy_then_poisoned(shop, storage):
    app, queue, calls = shop
    handle = queue.enqueue_sync("report", ["never"])
    function = _trigger(app, queue).get_user_function()
    for attempt in (1, 2):  # retries=1: two attempts
        message = _received(storage)
        asyncio.run(function(message))  # never raises for a task failure
        _host_deletes(storage, message)
        status = queue.status_sync(handle.id)
        assert status.attempts == attempt
    assert status.state is TaskState.DEAD and status.error == "LookupError: no such month"
    assert calls == ["never", "never"]
    assert storage.peek() == []
    assert [json.loads(m)["id"] for m in storage.peek(storage.poison)] == [handle.id]


def test_a_corrupt_message_is_poisoned_and_the_function_returns(shop, storage):
    app, queue, _ = shop
    storage.queue_client().send_message("not a task")
    message = _received(storage)
    asyncio.run(_trigger(app, queue).get_user_function()(message))
    assert storage.peek(storage.poison) == ["not a task"]


def test_the_trigger_raises_when_the_settlement_cannot_be_recorded(shop, storage, monkeypatch):
    app, queue, _ = shop
    queue.enqueue_sync("report", ["2026-12"])
    message = _received(storage)

    def broken(*args, **kwargs):
        raise ConnectionError("storage down")

    monkeypatch.setattr(queue.backend, "_write_settlement", broken)
    with pytest.raises(holdfast.azure.tasks.TaskNotSettled):
        asyncio.run(_trigger(app, queue).get_user_function()(message))
    # The host makes the message visible again and redelivers it (poison after 5 dequeues).


def test_a_queue_not_on_azure_is_refused(tmp_path):
    from holdfast.tasks import TaskQueue

    queue = TaskQueue(f"sqlite:///{tmp_path / 't.db'}")
    with pytest.raises(TypeError, match="not on an azure:// URL"):
        holdfast.azure.FunctionApp(lambda scope, receive, send: None, task_queues=[queue])


def test_periodic_tasks_get_a_timer_that_queues_them(storage):
    queue = storage.task_queue(name="digest")

    @queue.periodic("* * * * *", name="digest")
    async def digest() -> str:
        return "sent"

    app = holdfast.azure.FunctionApp(lambda scope, receive, send: None, task_queues=[queue])
    [timer] = [f for f in app.get_functions() if "schedule" in f.get_function_name()]
    [binding] = json.loads(timer.get_function_json())["bindings"]
    assert binding["type"] == "timerTrigger" and binding["schedule"] == "0 * * * * *"
    asyncio.run(timer.get_user_function()(None))
    [status] = queue.list_sync()
    assert status.task == "digest" and status.state is TaskState.QUEUED
    asyncio.run(timer.get_user_function()(None))  # the same minute: its slot is taken
    assert len(queue.list_sync()) == 1
