"""Kill task workers with SIGKILL while they work, then compare statuses with what happened.

Used by `test_tasks_crash.py` (small runs, in `make test`) and `bench/tasks.py crash` (larger
runs). Workers are real `holdfast tasks worker tasks_app:queue` processes; the task `record`
writes a row to a side-effect database once its body has completed, so the harness knows what
really ran, whatever the statuses say.

Counts, per run:
* lost: tasks that never reached `succeeded` (the task itself never fails);
* mismatches: statuses that disagree with what happened: `succeeded` with no completed run,
  `dead`/`failed` for a task whose body completed, anything not final once the run is over,
  and (SQS) a message in the dead-letter queue whose status is not `dead`;
* duplicates: completed runs beyond the first (allowed: delivery is at least once).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass
class CrashReport:
    tasks: int
    kills: int = 0
    lost: int = 0
    mismatches: list[str] = field(default_factory=list)
    duplicates: int = 0
    dead_lettered: int = 0
    states: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.tasks} tasks, {self.kills} SIGKILLs in {self.seconds:.1f}s: "
            f"lost {self.lost}, status mismatches {len(self.mismatches)}, "
            f"at-least-once duplicates {self.duplicates}, dead-lettered {self.dead_lettered}, "
            f"states {self.states}"
        )


@dataclass
class CrashRun:
    """One run: `url` is the queue URL the workers and this process share."""

    url: str
    workdir: Path
    tasks: int = 200
    pause: float = 0.05
    workers: int = 3
    concurrency: int = 4
    lease: float = 1.0
    kill_every: tuple[float, float] = (0.5, 1.5)
    seed: int = 7
    min_kills: int = 0  # also kill at even steps of progress: a fast machine gets kills too
    env: dict[str, str] = field(default_factory=dict)
    dead_letter_queue: Any = None  # (sqs client, DLQ URL) for SQS runs
    stall_limit: float = 60.0  # a safety net, not a performance assertion

    def __post_init__(self) -> None:
        self.effects = self.workdir / "effects.db"
        with sqlite3.connect(self.effects) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS effects (n INTEGER, pid INTEGER)")

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.env,
            "HOLDFAST_TEST_URL": self.url,
            "HOLDFAST_TEST_LEASE": str(self.lease),
            "HOLDFAST_TEST_EFFECTS": str(self.effects),
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "holdfast",
                "tasks",
                "worker",
                "tasks_app:queue",
                "--concurrency",
                str(self.concurrency),
                "--no-scheduler",
                "--log-level",
                "CRITICAL",
            ],
            env=self._env(),
            cwd=HERE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def run(self, queue: Any) -> CrashReport:
        """Queue the tasks on `queue` (a TaskQueue on `url`), run and kill workers, count."""
        started = time.monotonic()
        handles = [
            queue.enqueue_sync("record", [n], {"pause": self.pause}) for n in range(self.tasks)
        ]
        report = CrashReport(self.tasks)
        rng = random.Random(self.seed)
        workers = [self._spawn() for _ in range(self.workers)]
        try:
            report.kills = self._kill_until_done(queue, handles, workers, rng)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
        report.seconds = time.monotonic() - started
        self._count(queue, handles, report)
        return report

    def _kill_until_done(
        self,
        queue: Any,
        handles: list[Any],
        workers: list[subprocess.Popen[bytes]],
        rng: random.Random,
    ) -> int:
        kills, progress, last_change = 0, -1, time.monotonic()
        next_kill = time.monotonic() + rng.uniform(*self.kill_every)
        steps = [len(handles) * 0.9 * (k + 1) / (self.min_kills + 1) for k in range(self.min_kills)]
        while True:
            # Progress is read from the side effects (cheap); statuses only once all ran.
            ran = self._completed()
            done = ran + (_final_count(queue, handles) if ran == len(handles) else 0)
            if done == 2 * len(handles):
                return kills
            if done != progress:
                progress, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > self.stall_limit:
                return kills  # what is missing is counted as lost below
            due = time.monotonic() >= next_kill or (kills < len(steps) and ran >= steps[kills])
            if due and ran < len(handles) * 0.9:
                victim = workers.pop(rng.randrange(len(workers)))
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                kills += 1
                workers.append(self._spawn())
                next_kill = time.monotonic() + rng.uniform(*self.kill_every)
            time.sleep(0.02 if ran < len(handles) else 0.5)

    def _completed(self) -> int:
        with sqlite3.connect(self.effects, timeout=30) as conn:
            [(count,)] = conn.execute("SELECT count(DISTINCT n) FROM effects")
        return int(count)

    def _count(self, queue: Any, handles: list[Any], report: CrashReport) -> None:
        with sqlite3.connect(self.effects) as conn:
            runs = Counter(n for (n,) in conn.execute("SELECT n FROM effects"))
        report.duplicates = sum(count - 1 for count in runs.values() if count > 1)
        dead_lettered = self._dead_lettered()
        report.dead_lettered = len(dead_lettered)
        states: Counter[str] = Counter()
        for n, handle in enumerate(handles):
            status = queue.status_sync(handle.id)
            state = "missing" if status is None else status.state.value
            states[state] += 1
            if state != "succeeded":
                report.lost += 1
            ran = runs.get(n, 0) > 0
            if state == "succeeded" and not ran:
                report.mismatches.append(f"task {n} succeeded without a completed run")
            elif state in ("dead", "failed") and ran:
                report.mismatches.append(f"task {n} is {state} but ran: {status.error}")
            elif state not in ("succeeded", "dead", "failed"):
                report.mismatches.append(f"task {n} is {state} after the run")
            # A success whose worker died before deleting the message on its last allowed
            # receive leaves a copy in the DLQ: the status is still true, so not a mismatch.
            if handle.id in dead_lettered and state not in ("dead", "succeeded"):
                report.mismatches.append(f"task {n} is {state} but its message is in the DLQ")
        report.states = dict(states)

    def _dead_lettered(self) -> set[str]:
        if self.dead_letter_queue is None:
            return set()
        import json

        client, url = self.dead_letter_queue
        found: set[str] = set()
        while True:
            messages = client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return found
            found.update(json.loads(m["Body"])["id"] for m in messages)


def _final_count(queue: Any, handles: list[Any]) -> int:
    statuses = queue.list_sync(limit=len(handles) + 10)
    return sum(status.state.is_final for status in statuses)
