"""Workers SIGKILLed about once a second on an azure:// queue (Azurite): nothing is lost and every
status tells the truth — the crash harness of tests/tasks, with real `holdfast tasks worker`
processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))

from crash_harness import CrashRun

from holdfast.tasks import TaskQueue


def test_azure_workers_killed_lose_nothing_and_statuses_agree(storage, tmp_path):
    # A message may be caught by several kills in a row: allow as many dequeues as SQS's test
    # allows receives, so what is measured is loss, not the poison limit.
    url = storage.url(max_dequeue=10, wait=1)
    queue = TaskQueue(url, visibility_timeout=2.0)
    queue.backend.create()
    run = CrashRun(
        url,
        tmp_path,
        tasks=60,
        pause=0.05,
        lease=2.0,
        kill_every=(0.6, 1.4),
        min_kills=4,
        env={"AzureWebJobsStorage": storage.connection},
    )
    report = run.run(queue)
    print(report.summary())
    assert report.kills >= 3, report.summary()
    assert report.lost == 0, report.summary()
    assert report.mismatches == [], report.summary()
    # Nothing was poisoned, and a status never disagrees with the poison queue.
    poisoned = {json.loads(m)["id"] for m in storage.peek(storage.poison) if m.startswith("{")}
    assert not poisoned, poisoned
