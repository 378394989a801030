"""Durable after-response work: ``after_response(task, ..., durable=True)``.

The task is written ahead to its queue before the response, runs in the environment after
it, and is marked done there; if the environment dies first, a worker runs it. Backends
alone, then the adapter called directly, then both hosts under ``holdfast emulate``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import holdfast
from freeze_support import emulators, get, host_commands, wait_for
from holdfast.tasks import InvalidArguments, TaskQueue, TaskState
from holdfast.tasks.models import Job, Settlement
from lambda_events import TimedContext, http_event
from moto_support import AWS_ENV

HERE = Path(__file__).parent
HOSTS = host_commands("durable_app")


def _job(queue: str, n: int = 1, key: str | None = None) -> Job:
    now = time.time()
    return Job(queue, "record", [n], {}, now, now, idempotency_key=key)


# -- the backends' write-ahead ---------------------------------------------------------------


def test_a_held_task_is_running_and_no_worker_claims_it(any_url):
    queue = TaskQueue(any_url)
    task_id, delivery = queue.backend.hold(_job(queue.name), 30.0)
    assert delivery is not None and delivery.attempt == 1
    status = queue.status_sync(task_id)
    assert (status.state, status.attempts) == (TaskState.RUNNING, 1)
    queue.backend.maintain()
    assert queue.backend.claim(10, 30.0) == []
    queue.backend.settle([Settlement(delivery, TaskState.SUCCEEDED, result="1")])
    status = queue.status_sync(task_id)
    assert (status.state, status.result, status.attempts) == (TaskState.SUCCEEDED, 1, 1)
    queue.backend.maintain()
    assert queue.backend.claim(10, 30.0) == []


def test_a_held_task_whose_lease_lapses_goes_to_a_worker(any_url):
    queue = TaskQueue(any_url)
    task_id, delivery = queue.backend.hold(_job(queue.name), 0.05)
    assert delivery is not None

    def claimed() -> list:
        queue.backend.maintain()
        return queue.backend.claim(10, 30.0)

    found: list = []
    wait_for(lambda: bool(found.extend(claimed()) or found), "the lapsed write-ahead is claimed")
    assert [(d.id, d.attempt) for d in found] == [(task_id, 2)]
    # The environment that held it finishing late cannot overwrite the worker's attempt.
    queue.backend.settle([Settlement(delivery, TaskState.FAILED, error="late")])
    assert queue.status_sync(task_id).state is TaskState.RUNNING


def test_a_held_task_keeps_its_idempotency_key(any_url):
    queue = TaskQueue(any_url)
    first, delivery = queue.backend.hold(_job(queue.name, key="k"), 30.0)
    assert delivery is not None
    assert queue.backend.hold(_job(queue.name, key="k"), 30.0) == (first, None)
    assert queue.enqueue_sync("record", [1], idempotency_key="k").id == first


def test_sqs_a_held_message_surfaces_after_the_lease_as_a_dropped_duplicate(aws):
    queue = TaskQueue(aws.url(), endpoint_url=aws.endpoint)
    task_id, delivery = queue.backend.hold(_job(queue.name), 1.0)
    assert delivery is not None and delivery.token is None  # no receipt handle: not received
    assert queue.status_sync(task_id).state is TaskState.RUNNING
    assert queue.backend.claim(10, 30.0) == []  # delayed by the lease
    queue.backend.settle([Settlement(delivery, TaskState.SUCCEEDED, result="1")])
    found: list = []
    wait_for(lambda: bool(found.extend(queue.backend.claim(10, 30.0)) or found), "the message")
    assert [(d.id, d.settled) for d in found] == [(task_id, TaskState.SUCCEEDED)]


def test_sqs_a_held_task_whose_environment_died_runs_as_its_next_attempt(aws):
    queue = TaskQueue(aws.url(), endpoint_url=aws.endpoint)
    task_id, _ = queue.backend.hold(_job(queue.name), 1.0)
    found: list = []
    wait_for(lambda: bool(found.extend(queue.backend.claim(10, 30.0)) or found), "the message")
    assert [(d.id, d.attempt, d.settled) for d in found] == [(task_id, 2, None)]


# -- through the adapter, called directly ----------------------------------------------------


@pytest.fixture
def adapter_for():
    made: list[holdfast.Adapter] = []

    def make(queue: TaskQueue, durable_call) -> holdfast.Adapter:
        async def endpoint(request: Request) -> JSONResponse:
            handle = durable_call(int(request.path_params["n"]))
            return JSONResponse({"task_id": handle.task_id})

        app = Starlette(routes=[Route("/{n:int}", endpoint)])
        adapter = holdfast.Adapter(app, lifespan="off")
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


def _call(adapter: holdfast.Adapter, path: str, remaining_ms: int = 30_000) -> dict:
    answer = adapter(http_event(path), TimedContext(remaining_ms=remaining_ms))
    assert answer["statusCode"] == 200, answer
    return json.loads(answer["body"])


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_durable_work_runs_in_the_environment_and_is_marked_done(any_url, adapter_for, kind):
    queue = TaskQueue(any_url)
    ran: list[int] = []
    seen_while_running: list[TaskState] = []

    if kind == "async":

        @queue.task(name="record")
        async def record(n: int) -> int:
            seen_while_running.append(queue.backend.get(handle_ids[-1]).state)
            ran.append(n)
            return n * 2
    else:

        @queue.task(name="record")
        def record(n: int) -> int:
            seen_while_running.append(queue.backend.get(handle_ids[-1]).state)
            ran.append(n)
            return n * 2

    handle_ids: list[str] = []

    def durable_call(n: int):
        handle = holdfast.after_response(record, n, durable=True)
        handle_ids.append(handle.task_id)
        return handle

    adapter = adapter_for(queue, durable_call)
    body = _call(adapter, "/21")
    status = queue.status_sync(body["task_id"])
    assert (status.state, status.result, status.attempts) == (TaskState.SUCCEEDED, 42, 1)
    assert ran == [21] and seen_while_running == [TaskState.RUNNING]
    assert adapter.counts["drained"] == 1


def _refusal(error: type[Exception], fn, *args) -> str | None:
    """What an endpoint calling ``after_response(fn, *args, durable=True)`` is refused with."""

    async def endpoint(request: Request) -> JSONResponse:
        try:
            holdfast.after_response(fn, *args, durable=True)
        except error as exc:
            return JSONResponse({"refused": str(exc)})
        return JSONResponse({"refused": None})

    adapter = holdfast.Adapter(Starlette(routes=[Route("/", endpoint)]), lifespan="off")
    try:
        return _call(adapter, "/")["refused"]
    finally:
        adapter.close()


def test_a_plain_function_is_refused_clearly(any_url):
    async def plain(n: int) -> None: ...

    refused = _refusal(TypeError, plain, 1)
    assert "needs a holdfast task" in refused and "plain" in refused


def test_a_failed_write_ahead_fails_the_request_and_nothing_runs(aws, adapter_for):
    queue = TaskQueue(aws.url(), endpoint_url=aws.endpoint)
    ran: list[int] = []

    @queue.task(name="record")
    async def record(n: int) -> None:
        ran.append(n)

    adapter = adapter_for(queue, lambda n: holdfast.after_response(record, n, durable=True))
    first = _call(adapter, "/1")["task_id"]
    aws.sqs.delete_queue(QueueUrl=aws.queue_url)  # the write-ahead's send now fails
    answer = adapter(http_event("/2"), TimedContext())
    assert answer["statusCode"] == 500  # the app's error answer: no response claims the work
    assert ran == [1]
    assert [status.id for status in queue.list_sync()] == [first]  # no status left behind


@pytest.mark.parametrize("argument", [{"a": object()}, float("nan"), [[[]] * 2] * 300, "x"])
def test_arguments_that_are_not_valid_json_are_refused_before_the_response(any_url, argument):
    """Checked by the task's codec in the endpoint: nothing is stored, nothing runs."""
    queue = TaskQueue(any_url)
    ran: list[object] = []

    @queue.task(name="record")
    async def record(n: int) -> None:
        ran.append(n)

    assert _refusal(InvalidArguments, record, argument)
    assert ran == [] and queue.list_sync() == []


def test_a_pending_idempotency_key_runs_nowhere_twice(any_url, adapter_for):
    queue = TaskQueue(any_url)
    ran: list[int] = []

    @queue.task(name="record")
    async def record(n: int) -> None:
        ran.append(n)

    first = queue.enqueue_sync("record", [0], idempotency_key="order-7")
    keyed = record.options(idempotency_key="order-7")
    adapter = adapter_for(queue, lambda n: holdfast.after_response(keyed, n, durable=True))
    body = _call(adapter, "/1")
    assert body["task_id"] == first.id and ran == []  # the queued task is the one that runs


def test_a_delay_is_refused(any_url, adapter_for):
    queue = TaskQueue(any_url)

    @queue.task(name="record")
    async def record(n: int) -> None: ...

    later = record.options(delay=60)
    adapter = adapter_for(queue, lambda n: holdfast.after_response(later, n, durable=True))
    answer = adapter(http_event("/1"), TimedContext())
    assert answer["statusCode"] == 500


def test_work_the_deadline_cuts_off_is_released_to_the_queue_uncounted(any_url, adapter_for):
    queue = TaskQueue(any_url)
    runs: list[int] = []

    @queue.task(name="record", retries=0)
    async def record(n: int) -> int:
        import asyncio

        runs.append(n)
        if len(runs) == 1:  # the environment's run: longer than its deadline
            await asyncio.sleep(60)
        return n

    adapter = adapter_for(queue, lambda n: holdfast.after_response(record, n, durable=True))
    # 0.6 s left, 0.5 s of drain margin: the drain has 0.1 s.
    body = _call(adapter, "/5", remaining_ms=600)
    assert adapter.counts["spilled"] == 1
    status = queue.status_sync(body["task_id"])
    assert (status.state, status.attempts) == (TaskState.RETRYING, 0)
    worker = holdfast.tasks.Worker(queue)
    import asyncio

    asyncio.run(worker.run(burst=True))
    status = queue.status_sync(body["task_id"])
    assert (status.state, status.result, status.attempts) == (TaskState.SUCCEEDED, 5, 1)
    assert runs == [5, 5]


# -- both hosts under the emulator -----------------------------------------------------------


@pytest.fixture(params=["sqlite", "sqs"])
def backend_env(request, tmp_path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"HOLDFAST_TEST_URL": f"sqlite:///{tmp_path / 'tasks.db'}"}
        return
    aws = request.getfixturevalue("aws")
    yield {"HOLDFAST_TEST_URL": aws.url(wait=1), "AWS_ENDPOINT_URL": aws.endpoint, **AWS_ENV}


def _test_queue(env: dict[str, str]) -> TaskQueue:
    return TaskQueue(env["HOLDFAST_TEST_URL"], endpoint_url=env.get("AWS_ENDPOINT_URL"))


def _runs(record: Path) -> list[tuple[int, int, float]]:
    rows = (line.split() for line in record.read_text().splitlines())
    return [(int(n), int(pid), float(at)) for kind, n, pid, at in rows if kind == "ran"]


@contextlib.contextmanager
def _worker(env: dict[str, str], record: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``holdfast tasks worker durable_app:queue`` with the function's environment."""
    variables = {**os.environ, **env, "PYTHONPATH": str(HERE), "HOLDFAST_TEST_RECORD": str(record)}
    command = [sys.executable, "-m", "holdfast", "tasks", "worker", "durable_app:queue"]
    worker = subprocess.Popen([*command, "--poll-interval", "0.05"], cwd=HERE, env=variables)
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@pytest.fixture(params=sorted(HOSTS))
def host(request, tmp_path, backend_env):
    with emulators(HOSTS[request.param], HERE, tmp_path, env=backend_env) as start:
        yield start, backend_env


def test_durable_work_runs_after_the_response_and_before_the_freeze(host):
    start, env = host
    emulator, record = start(concurrency=1)
    answers = []
    for n in range(3):
        status, body, answered_at = get(emulator.url, f"/durable/{n}?gate=true")
        assert status == 200
        # Only now may the work end (see durable_app.record): it ends after the answer.
        Path(f"{record}.release-{n}").touch()
        answers.append((n, json.loads(body), answered_at))
    emulator.wait_idle(timeout=60)
    runs = {n: at for n, _, at in _runs(record)}
    freezes = {entry.request_id: entry for entry in emulator.freeze_log}
    queue = _test_queue(env)
    for n, body, answered_at in answers:
        freeze = freezes[body["request_id"]]
        assert freeze.outcome == "frozen", freeze
        assert freeze.response_sent_at < runs[n] < freeze.frozen_at
        assert answered_at < runs[n]
        status = queue.status_sync(body["task_id"])
        assert (status.state, status.result, status.attempts) == (TaskState.SUCCEEDED, n, 1)
    assert sorted(n for n, _, _ in _runs(record)) == [0, 1, 2]  # each ran once
    queue.close()


def test_a_sigkill_mid_drain_leaves_the_work_to_a_worker(host):
    start, env = host
    emulator, record = start(concurrency=1, timeout=3)
    status, body, _ = get(emulator.url, "/durable/7?gate=true")
    assert status == 200
    answer = json.loads(body)
    queue = _test_queue(env)
    # Visible through the status API while the environment runs it.
    assert queue.status_sync(answer["task_id"]).state is TaskState.RUNNING
    os.kill(answer["pid"], signal.SIGKILL)  # the runtime dies mid-drain, the work unfinished
    Path(f"{record}.release-7").touch()
    with _worker(env, record):
        wait_for(lambda: bool(_runs(record)), "a worker runs the work", limit=60)
        wait_for(
            lambda: queue.status_sync(answer["task_id"]).state is TaskState.SUCCEEDED,
            "the worker marks it done",
        )
    runs = _runs(record)
    assert [(n, pid != answer["pid"]) for n, pid, _ in runs] == [(7, True)]
    assert queue.status_sync(answer["task_id"]).attempts == 2
    queue.close()


def test_no_second_run_when_the_environment_finished_it(host):
    """The write-ahead outlives the environment's run: once its lease (and, on SQS, its
    message's delay) is over, a worker finds it done and does not run it again."""
    start, env = host
    emulator, record = start(concurrency=1, timeout=3)
    status, body, _ = get(emulator.url, "/durable-sync/3")
    assert status == 200
    answer = json.loads(body)
    emulator.wait_idle(timeout=60)
    queue = _test_queue(env)
    assert queue.status_sync(answer["task_id"]).state is TaskState.SUCCEEDED
    lease_over = time.time() + 3 + 10.5  # the timeout and holdfast's slack past it
    with _worker(env, record):
        if env["HOLDFAST_TEST_URL"].startswith("sqs://"):
            wait_for(lambda: _queue_empty(env), "the message is dropped as a duplicate", 60)
        else:
            wait_for(lambda: time.time() > lease_over, "the lease is over", 30)
            wait_for(lambda: _sqlite_idle(queue), "the worker has nothing left to claim")
    assert [n for n, _, _ in _runs(record)] == [3]
    status = queue.status_sync(answer["task_id"])
    assert (status.state, status.attempts) == (TaskState.SUCCEEDED, 1)
    queue.close()


def test_a_plain_function_is_refused_under_the_emulator(host):
    start, _ = host
    emulator, _ = start(concurrency=1)
    status, body, _ = get(emulator.url, "/refused")
    assert status == 200 and "needs a holdfast task" in json.loads(body)["refused"]


def _queue_empty(env: dict[str, str]) -> bool:
    import boto3

    url = env["HOLDFAST_TEST_URL"].removeprefix("sqs://").partition("?")[0]
    sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return all(counts.get(name, "0") == "0" for name in names)


def _sqlite_idle(queue: TaskQueue) -> bool:
    queue.backend.maintain()
    return queue.list_sync(state=TaskState.RUNNING) == [] and (
        queue.list_sync(state=TaskState.RETRYING) == []
    )
