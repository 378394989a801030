"""Workers SIGKILLed about once a second: nothing is lost and every status tells the truth.

Both backends, with real worker processes (`holdfast tasks worker`) and, for SQS, a real
moto server with a dead-letter queue. Duplicates are allowed (delivery is at least once) and
reported; `bench/tasks.py crash` runs the same harness with more tasks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from crash_harness import HERE, CrashRun

from holdfast.tasks import TaskQueue, TaskState


def test_sqlite_workers_killed_lose_nothing_and_statuses_agree(tmp_path):
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    queue = TaskQueue(url, visibility_timeout=1.0)
    run = CrashRun(url, tmp_path, tasks=240, pause=0.15, kill_every=(0.3, 0.9), min_kills=4)
    report = run.run(queue)
    print(report.summary())
    assert report.kills >= 3, report.summary()
    assert report.lost == 0, report.summary()
    assert report.mismatches == [], report.summary()


def test_single_slot_sqlite_workers_killed_lose_nothing(tmp_path):
    # At concurrency 1 sync tasks chain on their thread (settle + claim from there): the same
    # guarantees must hold when the worker dies anywhere in a chain.
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    queue = TaskQueue(url, visibility_timeout=1.0)
    run = CrashRun(
        url, tmp_path, tasks=200, pause=0.02, kill_every=(0.3, 0.9), min_kills=4, concurrency=1
    )
    report = run.run(queue)
    print(report.summary())
    assert report.kills >= 3, report.summary()
    assert report.lost == 0, report.summary()
    assert report.mismatches == [], report.summary()


def test_sqs_workers_killed_lose_nothing_and_statuses_agree(make_aws, moto_endpoint, tmp_path):
    aws = make_aws(max_receive=10)
    url = aws.url(wait=1)
    queue = TaskQueue(url, endpoint_url=moto_endpoint, visibility_timeout=2.0)
    run = CrashRun(
        url,
        tmp_path,
        tasks=40,
        pause=0.05,
        lease=2.0,
        kill_every=(0.6, 1.4),
        min_kills=4,
        env={"AWS_ENDPOINT_URL": moto_endpoint},
        dead_letter_queue=(aws.sqs, aws.dlq_url),
    )
    report = run.run(queue)
    print(report.summary())
    assert report.kills >= 3, report.summary()
    assert report.lost == 0, report.summary()
    assert report.mismatches == [], report.summary()


def test_sigterm_finishes_running_tasks_then_exits(tmp_path):
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    queue = TaskQueue(url)
    handle = queue.enqueue_sync("slow", [1.0])
    env = {
        **os.environ,
        "HOLDFAST_TEST_URL": url,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "holdfast", "tasks", "worker", "tasks_app:queue"],
        env=env,
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60  # a safety net, not a performance assertion
        while queue.status_sync(handle.id).state is not TaskState.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    status = queue.status_sync(handle.id)
    assert status.state is TaskState.SUCCEEDED and status.result == "done"
    assert b"SIGTERM: draining" in worker.stderr.read()
    json.dumps(status.to_dict())
