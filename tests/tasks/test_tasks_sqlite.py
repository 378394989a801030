"""SQLite specifics: WAL, atomic claims across processes, task ids."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

from holdfast.tasks import TaskQueue, TaskState

CLAIMER = textwrap.dedent(
    """
    import json, sys, time
    from holdfast.tasks.sqlite import SQLiteBackend

    backend = SQLiteBackend(sys.argv[1], queue="race")
    claimed, idle = [], 0
    while idle < 20:
        batch = backend.claim(3, 60)
        claimed += [d.id for d in batch]
        idle = 0 if batch else idle + 1
        time.sleep(0 if batch else 0.005)
    print(json.dumps(claimed))
    """
)


def test_wal_mode_and_schema(sqlite_url):
    queue = TaskQueue(sqlite_url)
    queue.enqueue_sync("anything")
    with sqlite3.connect(queue.backend.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA page_size").fetchone() == (1024,)
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM holdfast_tasks"
            " WHERE queue = 'q' AND state IN ('queued', 'retrying') AND run_at <= 1"
        ).fetchall()
    assert "holdfast_tasks_due" in str(plan)


def test_processes_never_claim_the_same_task(tmp_path):
    path = tmp_path / "race.db"
    queue = TaskQueue(f"sqlite:///{path}", name="race")
    ids = {queue.enqueue_sync("job", [n]).id for n in range(300)}
    claimers = [
        subprocess.Popen([sys.executable, "-c", CLAIMER, str(path)], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    claimed = []
    for process in claimers:
        out, _ = process.communicate(timeout=120)
        claimed += json.loads(out)
    assert len(claimed) == len(set(claimed)) == 300
    assert set(claimed) == ids
    assert {s.state for s in queue.list_sync(limit=1000)} == {TaskState.RUNNING}


def test_task_ids_carry_an_unguessable_token(sqlite_url):
    queue = TaskQueue(sqlite_url)
    handle = queue.enqueue_sync("anything")
    seq, token = handle.id.split("-")
    assert seq == "1" and len(token) == 16
    assert queue.status_sync(f"{seq}-{'0' * 16}") is None
    assert queue.status_sync(f"{seq}-zz") is None
    assert queue.status_sync(handle.id) is not None


def test_a_second_connection_sees_the_same_tasks(sqlite_url):
    producer = TaskQueue(sqlite_url, name="shared")
    reader = TaskQueue(sqlite_url, name="shared", register=False)
    handle = producer.enqueue_sync("anything", [1])
    assert reader.status_sync(handle.id).state is TaskState.QUEUED
    reader.close()
    producer.close()
    reopened = TaskQueue(sqlite_url, name="shared")
    assert reopened.status_sync(handle.id).task == "anything"
