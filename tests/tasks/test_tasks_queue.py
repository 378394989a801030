"""The producer side: defer, validation, idempotency keys, delays, status and listing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from holdfast.tasks import (
    InvalidArguments,
    TaskQueue,
    TaskState,
    UnknownTask,
    get_queue,
    registered_queues,
)


class Point(BaseModel):
    x: int
    y: int


def make_queue(url: str, **kwargs) -> TaskQueue:
    queue = TaskQueue(url, **kwargs)

    @queue.task(name="add")
    async def add(a: int, b: int = 0) -> int:
        return a + b

    @queue.task(name="when")
    def when(moment: datetime, *tags: str, **extra: float) -> str:
        return f"{moment.isoformat()} {tags} {extra}"

    @queue.task(name="shape")
    def shape(point: Point) -> Point:
        return Point(x=point.y, y=point.x)

    @queue.task(name="anything")
    def anything(value):
        return value

    return queue


def drain(queue: TaskQueue) -> None:
    asyncio.run(queue.worker().run(burst=True))


def test_defer_runs_and_stores_the_result(any_url):
    queue = make_queue(any_url)

    async def main():
        handle = await queue.tasks["add"].defer(2, b=3)
        status = await handle.status()
        assert status.state is TaskState.QUEUED and status.attempts == 0
        await queue.worker().run(burst=True)
        return await handle.status()

    status = asyncio.run(main())
    assert status.state is TaskState.SUCCEEDED
    assert status.result == 5 and status.error is None and status.attempts == 1
    assert status.created_at <= status.started_at <= status.finished_at
    assert status.created_at.tzinfo is UTC


def test_defer_sync_and_status_sync(any_url):
    queue = make_queue(any_url)
    handle = queue.tasks["add"].defer_sync(1)
    drain(queue)
    assert queue.status_sync(handle.id).result == 1
    assert handle.status_sync().state is TaskState.SUCCEEDED


def test_type_hints_are_honoured_both_ways(any_url):
    queue = make_queue(any_url)
    moment = datetime(2024, 5, 6, 7, 8, tzinfo=UTC)
    h1 = queue.tasks["when"].defer_sync(moment, "a", "b", weight=1)
    h2 = queue.tasks["shape"].defer_sync({"x": 1, "y": 2})  # validated into a Point
    drain(queue)
    assert queue.status_sync(h1.id).result == "2024-05-06T07:08:00+00:00 ('a', 'b') {'weight': 1.0}"
    assert queue.status_sync(h2.id).result == {"x": 2, "y": 1}


@pytest.mark.parametrize(
    ("task", "args", "kwargs", "message"),
    [
        ("add", ("one",), {}, "argument 'a'"),
        ("add", (), {}, "missing a required argument"),
        ("add", (1, 2, 3), {}, "too many positional arguments"),
        ("shape", ({"x": 1},), {}, "argument 'point'"),
        ("anything", (object(),), {}, "not JSON"),
        ("anything", ((1, 2),), {}, "JSON round trip"),
        ("anything", ({1: "int key"},), {}, "JSON round trip"),
        ("anything", (float("nan"),), {}, "not JSON"),
    ],
)
def test_arguments_are_validated_at_defer_time(task, args, kwargs, message):
    queue = make_queue("memory://")
    with pytest.raises(InvalidArguments, match=message):
        queue.tasks[task].defer_sync(*args, **kwargs)
    assert queue.list_sync() == []


def test_enqueue_by_name_without_the_function(sqlite_url):
    producer = TaskQueue(sqlite_url, name="spill")  # knows no tasks: JSON is all it checks
    handle = asyncio.run(producer.enqueue("add", [4], {"b": 5}, idempotency_key="k"))
    with pytest.raises(InvalidArguments):
        producer.enqueue_sync("add", [object()])
    drain(make_queue(sqlite_url, name="spill", register=False))  # the worker's side
    assert producer.status_sync(handle.id).result == 9


def test_enqueue_validates_registered_tasks():
    queue = make_queue("memory://")
    with pytest.raises(InvalidArguments):
        asyncio.run(queue.enqueue("add", ["x"]))


def test_idempotency_key_returns_the_pending_task(any_url):
    queue = make_queue(any_url)
    add = queue.tasks["add"]
    first = add.options(idempotency_key="order-1").defer_sync(1)
    second = add.options(idempotency_key="order-1").defer_sync(2)
    other = add.options(idempotency_key="order-2").defer_sync(3)
    assert first == second and first.created and not second.created
    assert other != first
    drain(queue)
    assert queue.status_sync(first.id).result == 1  # the second defer queued nothing
    assert len(queue.list_sync()) == 2
    # Once the first is finished, the key is free again.
    third = add.options(idempotency_key="order-1").defer_sync(4)
    assert third.created and third != first


def test_idempotency_key_must_be_a_string():
    queue = make_queue("memory://")
    with pytest.raises(ValueError, match="idempotency_key"):
        queue.tasks["add"].options(idempotency_key="").defer_sync(1)


def test_delay_holds_the_task_back(any_url):
    queue = make_queue(any_url)
    later = queue.tasks["add"].options(delay=timedelta(hours=1)).defer_sync(1)
    now = queue.tasks["add"].defer_sync(2)
    drain(queue)
    assert queue.status_sync(now.id).state is TaskState.SUCCEEDED
    status = queue.status_sync(later.id)
    assert status.state is TaskState.QUEUED
    assert status.run_at - status.created_at == timedelta(hours=1)


def test_list_filters_by_state_and_task_newest_first(any_url):
    queue = make_queue(any_url)
    handles = [queue.tasks["add"].defer_sync(i) for i in range(3)]
    queue.tasks["anything"].defer_sync("x")
    queue.enqueue_sync("missing-task")
    drain(queue)
    assert [s.id for s in queue.list_sync(task="add")] == [h.id for h in reversed(handles)]
    assert [s.task for s in queue.list_sync(state="dead")] == ["missing-task"]
    assert len(queue.list_sync(state=TaskState.SUCCEEDED, limit=2)) == 2
    assert queue.list_sync(state="running") == []


def test_status_of_unknown_ids(any_url):
    queue = make_queue(any_url)
    assert queue.status_sync("nope") is None
    assert queue.status_sync("12-00000000000000ff") is None
    assert asyncio.run(queue.status("")) is None


def test_queues_are_isolated_by_name(sqlite_url):
    first = make_queue(sqlite_url, name="first")
    second = TaskQueue(sqlite_url, name="second")
    handle = first.tasks["add"].defer_sync(1)
    assert second.status_sync(handle.id) is None
    assert second.list_sync() == []


def test_queues_register_themselves():
    queue = TaskQueue("memory://", name="registered")
    assert get_queue("registered") is queue
    assert queue in registered_queues()
    queue.close()
    assert get_queue("registered") is None
    TaskQueue("memory://", name="hidden", register=False)
    assert get_queue("hidden") is None


def test_task_registration_rules():
    queue = TaskQueue("memory://")

    @queue.task
    def plain(x: int) -> int:
        return x

    assert plain.name.endswith("test_task_registration_rules.<locals>.plain")
    assert plain(3) == 3  # still callable directly
    assert plain.max_attempts == 4
    with pytest.raises(ValueError, match="already registered"):
        queue.task(name=plain.name)(lambda: None)
    with pytest.raises(ValueError):
        queue.task(retries=-1)(lambda: None)
    with pytest.raises(ValueError):
        queue.task(timeout=0)(lambda: None)
    with pytest.raises(UnknownTask):
        queue.get_task("missing")


def test_status_to_dict_is_json_ready(any_url):
    queue = make_queue(any_url)
    handle = queue.tasks["add"].defer_sync(1)
    drain(queue)
    data = queue.status_sync(handle.id).to_dict()
    assert data["state"] == "succeeded" and data["result"] == 1
    assert datetime.fromisoformat(data["finished_at"]).tzinfo is not None
    assert set(data) >= {"id", "task", "attempts", "error", "created_at", "started_at"}


def test_handle_wait(any_url):
    queue = make_queue(any_url)

    async def main():
        worker = queue.worker()
        running = asyncio.create_task(worker.run())
        handle = await queue.tasks["add"].defer(20, b=22)
        status = await handle.wait(timeout=30)
        worker.stop()
        await running
        return status

    assert asyncio.run(main()).result == 42


def test_bad_urls():
    from holdfast.tasks import BackendError

    with pytest.raises(BackendError):
        TaskQueue("redis://localhost")
    with pytest.raises(BackendError, match="table"):
        TaskQueue("sqs://https://sqs.us-east-1.amazonaws.com/1/q")
    with pytest.raises(ValueError):
        TaskQueue("sqlite://")
    with pytest.raises(ValueError):
        TaskQueue("memory://", visibility_timeout=0)


def test_sqlite_url_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = TaskQueue("sqlite:///rel.db", name="rel")
    absolute = TaskQueue(f"sqlite:///{tmp_path}/abs.db?synchronous=full", name="abs")
    assert relative.backend.path == str(tmp_path / "rel.db")
    assert absolute.backend.path == str(tmp_path / "abs.db")
    assert absolute.backend._synchronous == "FULL"


def test_without_pydantic_arguments_must_round_trip_as_json(monkeypatch):
    from holdfast.tasks import codec

    monkeypatch.setattr(codec, "_pydantic", lambda: None)
    queue = TaskQueue("memory://")

    @queue.task(name="typed")
    def typed(n: int, items: list, when: datetime | None = None) -> dict:
        return {"n": n, "items": items}

    with pytest.raises(InvalidArguments, match="not JSON"):
        typed.defer_sync(1, [], when=datetime(2024, 1, 1))  # no pydantic to convert it
    with pytest.raises(InvalidArguments, match="round trip"):
        typed.defer_sync(1, (1, 2))
    handle = typed.defer_sync(1, [1, {"a": None}])
    drain(queue)
    assert queue.status_sync(handle.id).result == {"n": 1, "items": [1, {"a": None}]}
