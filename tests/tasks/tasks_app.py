"""A task app for worker subprocesses: `holdfast tasks worker tasks_app:queue`.

The queue URL and lease come from the environment; `record` writes a row to a side-effect
database so a test can check that every task really ran.
"""

from __future__ import annotations

import os
import sqlite3
import time

from holdfast.tasks import TaskQueue

queue = TaskQueue(
    os.environ["HOLDFAST_TEST_URL"],
    visibility_timeout=float(os.environ.get("HOLDFAST_TEST_LEASE", "30")),
)
_EFFECTS = os.environ.get("HOLDFAST_TEST_EFFECTS", "")


@queue.task(name="record", retries=20, backoff=0.05)
def record(n: int, pause: float = 0.0) -> int:
    time.sleep(pause)
    with sqlite3.connect(_EFFECTS, timeout=30) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS effects (n INTEGER, pid INTEGER)")
        conn.execute("INSERT INTO effects VALUES (?, ?)", (n, os.getpid()))
    return n


@queue.task(name="slow")
async def slow(seconds: float) -> str:
    import asyncio

    await asyncio.sleep(seconds)
    return "done"
