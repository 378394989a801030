"""Task-queue events reach the task consumer through the adapter and the custom runtime;
after-response work cut off by the deadline is spilled to the queue, not lost."""

from __future__ import annotations

import asyncio
import importlib
import os
import sqlite3
import sys
from pathlib import Path

import pytest
from task_events import SCHEDULED

import holdfast
from holdfast.emulator import ThreadedEmulator
from holdfast.tasks import TaskQueue, TaskState
from lambda_events import TimedContext

HERE = Path(__file__).parent


async def _app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def test_an_sqs_batch_of_tasks_runs_through_the_adapter(aws):
    queue = TaskQueue(aws.url(), endpoint_url=aws.endpoint, name="jobs")

    @queue.task(name="double")
    def double(n: int) -> int:
        return 2 * n

    handle = double.defer_sync(21)
    handler = holdfast.Adapter(_app, lifespan="off")
    try:
        answer = handler(aws.lambda_event(aws.receive()), TimedContext())
    finally:
        handler.close()
    assert answer == {"batchItemFailures": []}
    status = queue.status_sync(handle.id)
    assert (status.state, status.result) == (TaskState.SUCCEEDED, 42)


def test_other_records_events_are_still_invalid_http_events(aws):
    TaskQueue(aws.url(), endpoint_url=aws.endpoint, name="jobs")
    handler = holdfast.Adapter(_app, lifespan="off")
    foreign = {"Records": [{"eventSource": "aws:s3", "s3": {}}]}
    try:
        # Not for the task queue: POSTed to the app's pass-through path ("ok" is not JSON).
        assert handler(foreign, TimedContext()) is None
    finally:
        handler.close()


@pytest.mark.parametrize(
    "runtime",
    [
        ["-m", "holdfast", "run", "tasks_web_app:app"],
        ["-m", "awslambdaric", "tasks_web_app.handler"],  # the managed runtime's client
    ],
    ids=["holdfast-run", "awslambdaric"],
)
def test_an_sqs_batch_runs_under_each_host_in_the_emulator(aws, tmp_path, monkeypatch, runtime):
    effects = tmp_path / "effects.db"
    env = {
        "HOLDFAST_TEST_URL": aws.url(),
        "HOLDFAST_TEST_EFFECTS": str(effects),
        "AWS_ENDPOINT_URL": aws.endpoint,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name in ("HOLDFAST_TEST_URL", "HOLDFAST_TEST_EFFECTS", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.delitem(sys.modules, "tasks_app", raising=False)
    tasks_app = importlib.import_module("tasks_app")  # the producer side, in this process
    handles = [tasks_app.record.defer_sync(n) for n in range(3)]
    command = [sys.executable, *runtime]
    with ThreadedEmulator(command, cwd=str(HERE), env=env, timeout=30) as emulator:
        result = emulator.invoke(aws.lambda_event(aws.receive()))
        assert result.ok, result.payload
        assert result.json() == {"batchItemFailures": []}
    states = {tasks_app.queue.status_sync(h.id).state for h in handles}
    assert states == {TaskState.SUCCEEDED}
    with sqlite3.connect(effects) as connection:
        ran = sorted(n for (n,) in connection.execute("SELECT n FROM effects"))
    assert ran == [0, 1, 2]


def test_a_schedule_event_queues_periodic_tasks_through_the_adapter(sqlite_url):
    queue = TaskQueue(sqlite_url, name="cron")

    @queue.periodic("*/5 * * * *", name="every_five")
    def every_five() -> str:
        return "ran"

    handler = holdfast.Adapter(_app, lifespan="off")
    try:
        handler(SCHEDULED, TimedContext())
    finally:
        handler.close()
    assert [status.task for status in queue.list_sync()] == ["every_five"]


def test_after_response_work_cut_off_by_the_deadline_is_spilled_to_the_queue(sqlite_url):
    queue = TaskQueue(sqlite_url, name="spill")

    @queue.task(name="transcode")
    async def transcode(video: str) -> str:
        await asyncio.sleep(30)
        return video

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        holdfast.after_response(transcode, "cat.mp4")
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"accepted"})

    event = {
        "version": "2.0",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {},
        "requestContext": {"http": {"method": "POST"}},
    }
    handler = holdfast.Adapter(app, lifespan="off", drain_margin=0.5)
    try:
        # 0.7 s left and a 0.5 s margin: the work gets 0.2 s, then goes to the queue.
        assert handler(event, TimedContext(remaining_ms=700))["statusCode"] == 202
    finally:
        handler.close()
    assert handler.counts == {"drained": 0, "failed": 0, "spilled": 1, "cancelled": 0, "overrun": 0}
    [spilled] = queue.list_sync()
    assert (spilled.task, spilled.state) == ("transcode", TaskState.QUEUED)
