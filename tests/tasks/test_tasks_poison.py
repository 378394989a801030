"""Poison rows in the SQLite file: bad rows end `dead` or read as `corrupt`; nothing stalls.

The database file is outside holdfast's control (edited by hand, written by other software,
damaged): every test here writes a row holdfast would never write and checks that the rest of
the queue carries on, that nothing stays `running`, and that status reads never raise.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from holdfast.tasks import TaskQueue, TaskState

DEEP = "[" * 100_000 + "]" * 100_000  # RecursionError in json.loads


def make_queue(sqlite_url: str) -> tuple[TaskQueue, list[int]]:
    queue = TaskQueue(sqlite_url)
    ran: list[int] = []

    @queue.task(name="note", retries=2)
    def note(n: int) -> int:
        ran.append(n)
        return n

    return queue, ran


def raw(queue: TaskQueue) -> sqlite3.Connection:
    return sqlite3.connect(queue.backend.path, isolation_level=None)


def seq_of(task_id: str) -> int:
    return int(task_id.split("-")[0])


def corrupt(queue: TaskQueue, task_id: str, **columns: object) -> None:
    assignments = ", ".join(f"{name} = ?" for name in columns)
    with raw(queue) as conn:
        conn.execute(
            f"UPDATE holdfast_tasks SET {assignments} WHERE seq = ?",
            (*columns.values(), seq_of(task_id)),
        )


async def drain(queue: TaskQueue) -> None:
    await queue.worker(concurrency=10).run(burst=True)


BAD_PAYLOADS = {
    "deeply nested JSON": DEEP,
    "invalid UTF-8": b"\xff\xfe[[1],{}]",
    "not JSON": "[[1], {",
    "wrong shape": '{"args": [1]}',
    "a number": 12,
    "huge and truncated": "[[" + "1," * 2_000_000,
}


@pytest.mark.parametrize("bad", list(BAD_PAYLOADS))
def test_a_poison_payload_goes_dead_and_the_batch_runs(sqlite_url, bad):
    queue, ran = make_queue(sqlite_url)
    handles = [queue.tasks["note"].defer_sync(n) for n in range(10)]
    poisoned = handles[3]
    corrupt(queue, poisoned.id, payload=BAD_PAYLOADS[bad])

    asyncio.run(drain(queue))

    status = queue.status_sync(poisoned.id)
    assert status.state is TaskState.DEAD
    assert status.error.startswith("CorruptRecord: payload: ")
    assert status.attempts == 1
    assert sorted(ran) == [n for n in range(10) if n != 3]
    others = [queue.status_sync(h.id) for h in handles if h is not poisoned]
    assert {s.state for s in others} == {TaskState.SUCCEEDED}
    assert queue.list_sync(state="running") == []


def test_text_run_at_goes_dead_instead_of_waiting_forever(sqlite_url):
    queue, ran = make_queue(sqlite_url)
    stuck = queue.tasks["note"].defer_sync(1)
    fine = queue.tasks["note"].defer_sync(2)
    corrupt(queue, stuck.id, run_at="tomorrow")

    status = queue.status_sync(stuck.id)  # reading it never raises
    assert status.state is TaskState.CORRUPT
    assert status.error == "CorruptRecord: run_at 'tomorrow' is not a time (epoch seconds)"
    assert [s.id for s in queue.list_sync(state="corrupt")] == [stuck.id]

    asyncio.run(drain(queue))  # maintenance makes it dead: it could never become due

    assert queue.status_sync(fine.id).state is TaskState.SUCCEEDED and ran == [2]
    with raw(queue) as conn:
        state, error = conn.execute(
            "SELECT state, error FROM holdfast_tasks WHERE seq = ?", (seq_of(stuck.id),)
        ).fetchone()
    assert state == "dead" and error == "CorruptRecord: run_at 'tomorrow' is not a time"


def test_running_row_with_a_bad_lease_is_recovered(sqlite_url):
    queue, ran = make_queue(sqlite_url)
    handle = queue.tasks["note"].defer_sync(7)
    corrupt(queue, handle.id, state="running", attempts=1, lease="gone", lease_until="soon")
    asyncio.run(drain(queue))
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.SUCCEEDED and status.attempts == 2 and ran == [7]


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        ({"state": "paused"}, "state 'paused' is not a known state"),
        ({"state": b"\xff\xfe"}, "state b'\\xff\\xfe' is not a known state"),
        ({"state": "ex\udcffotic".encode("utf-8", "surrogatepass")}, "is not a known state"),
        ({"attempts": "many"}, "attempts 'many' is not a count"),
        ({"attempts": -3}, "attempts -3 is not a count"),
        ({"created_at": "yesterday"}, "created_at 'yesterday' is not a time"),
        ({"started_at": 1e300}, "started_at 1e+300 is not a time"),
        ({"finished_at": b"\x00"}, "finished_at b'\\x00' is not a time"),
        ({"result": DEEP, "state": "succeeded"}, "result '[[[[[[[[[["),
        ({"result": "NaN", "state": "succeeded"}, "result 'NaN' is not JSON"),
        ({"result": b"\xff", "state": "succeeded"}, "result b'\\xff' is not JSON"),
        ({"task": b"\xffname"}, "task b'\\xffname' is not text"),
    ],
)
def test_unreadable_columns_read_as_corrupt(sqlite_url, columns, problem):
    queue, _ = make_queue(sqlite_url)
    handle = queue.tasks["note"].defer_sync(1)
    healthy = queue.tasks["note"].defer_sync(2)
    corrupt(queue, handle.id, **columns)

    status = queue.status_sync(handle.id)
    assert status.state is TaskState.CORRUPT and problem in status.error
    assert status.state.is_final  # handle.wait() returns instead of polling forever
    listed = {s.id: s for s in queue.list_sync(limit=10)}
    assert listed[handle.id].state is TaskState.CORRUPT
    assert [s.id for s in queue.list_sync(state="corrupt")] == [handle.id]
    assert handle.id not in {s.id for s in queue.list_sync(state="queued")}
    assert queue.status_sync(healthy.id).state is TaskState.QUEUED
    status.to_dict()  # JSON-ready for the status router


def test_invalid_utf8_in_text_columns_never_breaks_a_read(sqlite_url):
    queue, _ = make_queue(sqlite_url)
    handle = queue.tasks["note"].defer_sync(1)
    with raw(queue) as conn:
        conn.execute(
            "UPDATE holdfast_tasks SET error = CAST(x'62616420ff' AS TEXT),"
            " task = CAST(x'6e6f7465ff' AS TEXT) WHERE seq = ?",
            (seq_of(handle.id),),
        )
    status = queue.status_sync(handle.id)
    assert status.error == "bad \ufffd" and status.task == "note\ufffd"
    asyncio.run(drain(queue))  # the task name no longer matches: dead, not stuck
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.DEAD and "UnknownTask" in status.error


def test_a_row_with_a_corrupt_token_is_still_settled(sqlite_url):
    queue, ran = make_queue(sqlite_url)
    handle = queue.tasks["note"].defer_sync(5)
    corrupt(queue, handle.id, token="not-a-number")
    asyncio.run(drain(queue))
    assert ran == [5]
    [status] = queue.list_sync()
    assert status.id.endswith("-corrupt") and status.state is TaskState.SUCCEEDED
    assert queue.status_sync(handle.id) is None  # no id can name it any more


def test_a_row_deleted_mid_claim_is_dropped_quietly(sqlite_url, caplog):
    queue = TaskQueue(sqlite_url)
    deleted = asyncio.Event()

    @queue.task(name="vanish")
    async def vanish(n: int) -> int:
        if n == 0:
            with raw(queue) as conn:
                conn.execute("DELETE FROM holdfast_tasks WHERE task = 'vanish' AND seq = 1")
            deleted.set()
        return n

    handles = [vanish.defer_sync(n) for n in range(3)]
    asyncio.run(drain(queue))
    assert deleted.is_set()
    assert queue.status_sync(handles[0].id) is None
    assert [queue.status_sync(h.id).state for h in handles[1:]] == [TaskState.SUCCEEDED] * 2
    assert "lease lost" in caplog.text


def test_worker_lost_gives_up_at_the_maximum(sqlite_url):
    queue, ran = make_queue(sqlite_url)  # note: retries=2, so 3 attempts
    handle = queue.tasks["note"].defer_sync(1)
    # Three attempts whose workers died: the row says running with an expired lease.
    corrupt(queue, handle.id, state="running", attempts=3, lease="x", lease_until=0)
    asyncio.run(drain(queue))
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.DEAD and status.attempts == 3 and ran == []
    assert status.error == "WorkerLost: the worker of attempt 3 stopped"


def test_a_table_without_constraints_and_null_columns(tmp_path):
    # A table made by other software: no NOT NULL anywhere, NULLs where holdfast writes values.
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE holdfast_tasks (seq INTEGER PRIMARY KEY, token, queue, task, payload,"
            " state, attempts DEFAULT 0, run_at, lease, lease_until, idempotency_key, result,"
            " error, created_at, started_at, finished_at)"
        )
    queue, ran = make_queue(f"sqlite:///{path}")
    good = queue.tasks["note"].defer_sync(1)
    nulls = [queue.tasks["note"].defer_sync(n) for n in range(2, 6)]
    columns = ["payload", "task", "run_at", "attempts"]
    for handle, column in zip(nulls, columns, strict=True):
        corrupt(queue, handle.id, **{column: None})
    for handle in nulls:
        queue.status_sync(handle.id)  # never raises
    asyncio.run(drain(queue))
    assert queue.status_sync(good.id).state is TaskState.SUCCEEDED
    states = {column: queue.status_sync(h.id) for h, column in zip(nulls, columns, strict=True)}
    assert states["payload"].state is TaskState.DEAD
    assert states["task"].state is TaskState.DEAD  # no such task: "None"
    assert states["run_at"].state is TaskState.DEAD  # could never become due
    assert states["attempts"].state is TaskState.SUCCEEDED  # counted from 0 again
    assert sorted(ran) == [1, 5]
    assert queue.list_sync(state="running") == []


def test_results_and_arguments_that_break_the_codecs_do_not_stall_the_worker(sqlite_url):
    queue = TaskQueue(sqlite_url)

    @queue.task(name="deep_result")
    async def deep_result() -> list:
        value: list = []
        for _ in range(100_000):
            value = [value]
        return value

    @queue.task(name="deep_result_sync")
    def deep_result_sync() -> list:
        value: list = []
        for _ in range(100_000):
            value = [value]
        return value

    @queue.task(name="typed")
    def typed(items: list[list[int]]) -> int:
        return len(items)

    handles = [deep_result.defer_sync(), deep_result_sync.defer_sync()]
    ok = typed.defer_sync([[1]])
    asyncio.run(drain(queue))  # returns: nothing is left running
    for handle in handles:
        status = queue.status_sync(handle.id)
        assert status.state is TaskState.FAILED and status.error.startswith("result is not JSON")
    assert queue.status_sync(ok.id).result == 1
