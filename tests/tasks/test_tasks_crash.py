"""Worker processes killed with SIGKILL lose nothing; SIGTERM drains and exits cleanly."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from holdfast.tasks import TaskQueue, TaskState

HERE = Path(__file__).resolve().parent
TASKS = 600


def _spawn(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "holdfast", "tasks", "worker", "tasks_app:queue", *args],
        env=env,
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _env(tmp_path, lease: float) -> dict[str, str]:
    return {
        **os.environ,
        "HOLDFAST_TEST_URL": f"sqlite:///{tmp_path / 'tasks.db'}",
        "HOLDFAST_TEST_LEASE": str(lease),
        "HOLDFAST_TEST_EFFECTS": str(tmp_path / "effects.db"),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }


def _wait_for(condition, *, pause: float) -> None:
    deadline = time.monotonic() + 120  # a safety net, not a performance assertion
    while not condition():
        assert time.monotonic() < deadline, "the workers stopped making progress"
        time.sleep(pause)


def _wait_for_successes(queue: TaskQueue, count: int) -> None:
    _wait_for(lambda: _counts(queue).get("succeeded", 0) >= count, pause=0.02)


def _counts(queue: TaskQueue) -> dict[str, int]:
    with sqlite3.connect(queue.backend.path) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM holdfast_tasks GROUP BY state"))


def test_sigkilled_workers_lose_no_task(tmp_path):
    env = _env(tmp_path, lease=1.0)
    queue = TaskQueue(env["HOLDFAST_TEST_URL"], visibility_timeout=1.0)
    handles = [queue.enqueue_sync("record", [n], {"pause": 0.02}) for n in range(TASKS)]
    rng = random.Random(7)
    workers = [_spawn(env, "--concurrency", "4") for _ in range(3)]
    kills = 0
    try:
        # Kill a random worker mid-run each time another tenth of the tasks is done,
        # replacing it each time.
        for threshold in range(TASKS // 10, TASKS * 7 // 10, TASKS // 10):
            _wait_for_successes(queue, threshold)
            victim = workers.pop(rng.randrange(len(workers)))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            workers.append(_spawn(env, "--concurrency", "4"))
        _wait_for_successes(queue, TASKS)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(30)

    assert kills == 6
    assert _counts(queue) == {"succeeded": TASKS}
    statuses = [queue.status_sync(h.id) for h in handles]
    assert all(s.state is TaskState.SUCCEEDED for s in statuses)
    with sqlite3.connect(tmp_path / "effects.db") as conn:
        ran = [n for (n,) in conn.execute("SELECT n FROM effects")]
    assert set(ran) == set(range(TASKS))  # every task ran; some more than once is allowed
    redelivered = [s for s in statuses if s.attempts > 1]
    assert redelivered, "the kills should have interrupted some tasks"


def test_sigterm_finishes_running_tasks_then_exits(tmp_path):
    env = _env(tmp_path, lease=30)
    queue = TaskQueue(env["HOLDFAST_TEST_URL"])
    handle = queue.enqueue_sync("slow", [1.0])
    worker = _spawn(env)
    try:
        _wait_for(lambda: queue.status_sync(handle.id).state is TaskState.RUNNING, pause=0.02)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.SUCCEEDED and status.result == "done"
    assert b"SIGTERM: draining" in worker.stderr.read()
