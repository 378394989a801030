"""Benchmark: holdfast's SQLite task queue against Huey's SqliteHuey, one worker each.

    .venv/bin/python bench/tasks.py [--tasks 3000] [--rounds 5] [--latency-samples 150]
    .venv/bin/python bench/tasks.py crash [--backend both] [--tasks 500] [--max-receive 10]
    .venv/bin/python bench/tasks.py sqs [--tasks 300] [--rounds 3]

`sqs` measures the SQS backend on a moto_server it starts, beside a plain boto3 loop over
the calls the backend cannot avoid (send; receive in batches of 10; delete in batches of 10): the
backend's own overhead (status items in DynamoDB, leases, validation) over bare SQS.

`crash` runs the crash harness of tests/tasks/test_tasks_crash.py with more tasks: worker
processes SIGKILLed about once a second (SQLite, and SQS + DynamoDB on a moto_server it
starts), then counts lost tasks, status mismatches and at-least-once duplicates.

Each worker runs in its own process, as in production: `holdfast tasks worker` with its
default concurrency (10), and for reference the same worker at concurrency 1; Huey's consumer
with one worker thread (its default). The producer is this process.

* throughput: defer a burst of no-op tasks (sync `def noop(): return None`, result/status
  stored) and wait for the last one; counted from the first defer to the last stored result.
* latency: defer one task at a time, 0-10 ms apart (so workers go idle between tasks), and
  measure from just before the defer to the moment the task function starts.

Rounds alternate between the queues on the same machine. Both SQLite files use WAL with
synchronous=NORMAL, so the comparison is at equal durability (Huey's default, FULL, fsyncs
every commit; holdfast's default is NORMAL).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = os.environ.get("HOLDFAST_BENCH_DIR", "")


# -- the queues (the worker processes import this file as a module) --------------------------


def make_holdfast(name: str):
    from holdfast.tasks import TaskQueue

    queue = TaskQueue(f"sqlite:///{BENCH_DIR}/{name}.db", name=name)

    @queue.task(name="noop")
    def noop() -> None:
        return None

    @queue.task(name="stamp")
    def stamp() -> float:
        return time.time()

    return queue, noop, stamp


def make_huey():
    from huey import SqliteHuey
    from huey.storage import SqliteStorage

    class NormalSyncStorage(SqliteStorage):
        def _create_connection(self):
            conn = super()._create_connection()
            conn.execute("pragma synchronous = NORMAL")  # as holdfast; Huey's default is FULL
            return conn

    huey = SqliteHuey(
        "bench", filename=f"{BENCH_DIR}/huey.db", store_none=True, storage_class=NormalSyncStorage
    )

    @huey.task()
    def noop():
        return None

    @huey.task()
    def stamp():
        return time.time()

    return huey, noop, stamp


# holdfast's worker imports `tasks:<name>`; these module attributes are built on import.
if BENCH_DIR:
    for _name in ("holdfast_c10", "holdfast_c1"):
        globals()[_name] = make_holdfast(_name)[0]


# -- clients -----------------------------------------------------------------------------------


def _poll(check, interval: float = 0.0005, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while (value := check()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError("a worker stopped making progress")
        time.sleep(interval)
    return value


class Holdfast:
    def __init__(self, name: str, concurrency: int) -> None:
        self.name = f"holdfast (concurrency {concurrency})"
        self.db = f"{BENCH_DIR}/{name}.db"
        self.queue, self.noop, self.stamp = make_holdfast(name)
        self.queue.list_sync(limit=1)  # create the schema before the worker starts
        self.command = [
            *("-m", "holdfast", "tasks", "worker", f"tasks:{name}"),
            *("--concurrency", str(concurrency), "--log-level", "WARNING"),
        ]

    def burst(self, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            self.noop.defer_sync()
        _poll(lambda: True if self._all_done() else None)
        return n / (time.perf_counter() - start)

    def _all_done(self) -> bool:
        # Concurrent tasks may finish out of order: wait for all of them, not the last one.
        with sqlite3.connect(self.db) as conn:
            sql = "SELECT 1 FROM holdfast_tasks WHERE state != 'succeeded' LIMIT 1"
            return conn.execute(sql).fetchone() is None

    def latency(self) -> float:
        sent = time.time()
        handle = self.stamp.defer_sync()
        status = _poll(lambda: s if (s := handle.status_sync()).state.is_final else None)
        return status.result - sent


class Huey:
    name = "huey (1 worker thread)"

    def __init__(self) -> None:
        from huey.constants import EmptyData

        self.huey, self.noop, self.stamp = make_huey()
        self.empty = EmptyData
        self.command = [
            *("-c", "from huey.bin.huey_consumer import consumer_main; consumer_main()"),
            *("tasks.HUEY", "--workers", "1", "--quiet"),
        ]

    def _result(self, result):
        value = _poll(
            lambda: v if (v := self.huey.storage.peek_data(result.id)) is not self.empty else None
        )
        return self.huey.serializer.deserialize(value)

    def burst(self, n: int) -> float:
        start = time.perf_counter()
        results = [self.noop() for _ in range(n)]
        self._result(results[-1])  # one worker thread: FIFO, the last finishes last
        return n / (time.perf_counter() - start)

    def latency(self) -> float:
        sent = time.time()
        return self._result(self.stamp()) - sent


if BENCH_DIR:
    HUEY = make_huey()[0]


# -- the run -------------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=3000, help="tasks per burst")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-samples", type=int, default=150, help="per queue")
    parser.add_argument("--summary", metavar="PATH", help="also write the result rows as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="holdfast-bench-") as tmp:
        os.environ["HOLDFAST_BENCH_DIR"] = globals()["BENCH_DIR"] = tmp
        clients = [Holdfast("holdfast_c10", 10), Huey(), Holdfast("holdfast_c1", 1)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
        workers = [
            subprocess.Popen([sys.executable, *c.command], env=env, cwd=tmp) for c in clients
        ]
        try:
            throughput = _run(clients, args)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    worker.kill()
    import summary

    single, huey_rate = (
        statistics.median(throughput["holdfast (concurrency 1)"]),
        statistics.median(throughput[Huey.name]),
    )
    summary.write(
        args.summary,
        [
            summary.row(
                "tasks, SQLite, no-op, 1 worker, concurrency 1 vs Huey SqliteHuey",
                f"{single:,.0f}/s",
                f"{huey_rate:,.0f}/s",
                single / huey_rate,
                2.0,
                higher_is_better=True,
                rounds=summary.ratios(
                    throughput["holdfast (concurrency 1)"], throughput[Huey.name]
                ),
            )
        ],
    )


def _run(clients: list, args: argparse.Namespace) -> dict[str, list[float]]:
    for client in clients:  # warm up: imports, connections, the workers' first poll
        client.burst(300)
    throughput: dict[str, list[float]] = {c.name: [] for c in clients}
    latency: dict[str, list[float]] = {c.name: [] for c in clients}
    rng = random.Random(1)
    for round_no in range(args.rounds):
        order = clients[round_no % len(clients) :] + clients[: round_no % len(clients)]
        for client in order:
            throughput[client.name].append(client.burst(args.tasks))
        for _ in range(args.latency_samples // args.rounds):
            for client in order:
                latency[client.name].append(client.latency())
                time.sleep(rng.uniform(0.0, 0.01))  # let the workers go idle
        rates = ", ".join(f"{name}: {values[-1]:,.0f}/s" for name, values in throughput.items())
        print(f"round {round_no + 1}: {rates}", flush=True)
    _report(clients, throughput, latency, args)
    return throughput


def _report(clients: list, throughput: dict, latency: dict, args: argparse.Namespace) -> None:
    import huey

    import summary

    print(
        f"\n{args.tasks} no-op tasks per burst, {args.rounds} interleaved rounds; "
        f"SQLite {sqlite3.sqlite_version} WAL synchronous=NORMAL; huey {huey.__version__}; "
        f"Python {sys.version.split()[0]}; {os.cpu_count()} CPUs"
    )
    print(f"{'':32}{'tasks/s (median)':>17}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}")
    for name in throughput:
        ms = [v * 1000 for v in latency[name]]
        print(
            f"{name:32}{statistics.median(throughput[name]):>17,.0f}"
            f"{_percentile(ms, 0.5):>9.2f}{_percentile(ms, 0.9):>9.2f}{_percentile(ms, 0.99):>9.2f}"
        )
    huey_name = Huey.name
    print()
    for client in clients:
        if client.name == huey_name:
            continue
        per_round = summary.ratios(throughput[client.name], throughput[huey_name])
        ratio = statistics.median(throughput[client.name]) / statistics.median(
            throughput[huey_name]
        )
        p50 = _percentile(latency[client.name], 0.5) / _percentile(latency[huey_name], 0.5)
        print(
            f"{client.name} / huey: throughput {ratio:.2f}x "
            f"(per round: {', '.join(f'{r:.2f}' for r in per_round)}), latency p50 {p50:.3f}x"
        )
    default, single = clients[0].name, clients[-1].name
    p50 = _percentile(latency[default], 0.5) * 1000
    huey_rate = statistics.median(throughput[huey_name])
    ratio = statistics.median(throughput[single]) / huey_rate
    print(
        f"\ngoal (issue 17), {single}: throughput >= 2x huey -> {ratio:.2f}x "
        f"{'met' if ratio >= 2 else 'NOT met'}; {default}: defer-to-start p50 <= 10 ms -> "
        f"{p50:.2f} ms {'met' if p50 <= 10 else 'NOT met'}"
    )


def crash_main(argv: list[str]) -> None:
    """`bench/tasks.py crash`: the crash harness, larger; prints one line of counts per run."""
    parser = argparse.ArgumentParser(prog="bench/tasks.py crash")
    parser.add_argument("--backend", choices=["sqlite", "sqs", "both"], default="both")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--pause", type=float, default=0.05, help="seconds each task sleeps")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=1.0, help="mean seconds")
    parser.add_argument("--max-receive", type=int, default=10, help="SQS maxReceiveCount")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    tests = Path(__file__).resolve().parent.parent / "tests"
    sys.path[:0] = [str(tests / "tasks"), str(tests)]
    from crash_harness import CrashRun

    from holdfast.tasks import TaskQueue

    def options(tmp: Path, lease: float) -> dict:
        spread = (args.kill_every * 0.5, args.kill_every * 1.5)
        return dict(
            workdir=tmp, tasks=args.tasks, pause=args.pause, workers=args.workers,
            concurrency=args.concurrency, lease=lease, kill_every=spread, seed=args.seed,
        )  # fmt: skip

    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="holdfast-crash-") as tmp:
            url = f"sqlite:///{tmp}/tasks.db"
            queue = TaskQueue(url, visibility_timeout=1.0)
            report = CrashRun(url, **options(Path(tmp), 1.0)).run(queue)
            print(f"sqlite: {report.summary()}", flush=True)
            for line in report.mismatches:
                print(f"  {line}")
    if args.backend in ("sqs", "both"):
        _crash_sqs(args, options, CrashRun, TaskQueue)


def _crash_sqs(args: argparse.Namespace, options, crash_run, task_queue) -> None:
    import conftest
    from moto_support import moto_server

    with moto_server() as endpoint:
        aws = conftest.AwsResources(endpoint, max_receive=args.max_receive)
        url = aws.url(wait=1)
        queue = task_queue(url, endpoint_url=endpoint, visibility_timeout=2.0)
        with tempfile.TemporaryDirectory(prefix="holdfast-crash-") as tmp:
            run = crash_run(
                url,
                env={"AWS_ENDPOINT_URL": endpoint},
                dead_letter_queue=(aws.sqs, aws.dlq_url),
                **options(Path(tmp), 2.0),
            )
            report = run.run(queue)
        print(f"sqs (maxReceiveCount {args.max_receive}): {report.summary()}", flush=True)
        for line in report.mismatches:
            print(f"  {line}")


def sqs_main(argv: list[str]) -> None:
    """`bench/tasks.py sqs`: holdfast's SQS backend against a plain boto3 loop, side by side."""
    parser = argparse.ArgumentParser(prog="bench/tasks.py sqs")
    parser.add_argument("--tasks", type=int, default=300, help="tasks per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--summary", metavar="PATH", help="also write the result rows as JSON")
    args = parser.parse_args(argv)
    tests = Path(__file__).resolve().parent.parent / "tests"
    sys.path[:0] = [str(tests / "tasks"), str(tests)]
    import conftest
    from moto_support import moto_server

    rates: dict[str, list[float]] = {}
    with moto_server() as endpoint:
        for _ in range(args.rounds):  # interleaved: load on a shared machine hits both alike
            for name, rate in (
                *_holdfast_sqs(conftest.AwsResources(endpoint), args.tasks),
                *_plain_sqs(conftest.AwsResources(endpoint), args.tasks),
            ):
                rates.setdefault(name, []).append(rate)
    print(f"\n{args.tasks} no-op tasks per round, {args.rounds} rounds, moto_server (local)")
    print(f"{'':52}{'tasks/s (median)':>17}")
    for name, values in rates.items():
        print(f"{name:52}{statistics.median(values):>17,.0f}")
    for side in ("produce", "consume"):
        ours = statistics.median(rates[f"holdfast SQS backend: {side}"])
        plain = statistics.median(rates[f"plain boto3: {side}"])
        print(f"{side}: holdfast / plain boto3 = {ours / plain:.2f}x")
    import summary

    summary.write(
        args.summary,
        [
            summary.row(
                f"tasks, SQS backend on moto_server vs plain boto3: {side}",
                f"{statistics.median(rates[f'holdfast SQS backend: {side}']):,.0f}/s",
                f"{statistics.median(rates[f'plain boto3: {side}']):,.0f}/s",
                statistics.median(rates[f"holdfast SQS backend: {side}"])
                / statistics.median(rates[f"plain boto3: {side}"]),
                None,
                higher_is_better=True,
                rounds=summary.ratios(
                    rates[f"holdfast SQS backend: {side}"], rates[f"plain boto3: {side}"]
                ),
            )
            for side in ("produce", "consume")
        ],
    )


def _holdfast_sqs(aws, n: int) -> list[tuple[str, float]]:
    import asyncio

    from holdfast.tasks import TaskQueue

    queue = TaskQueue(aws.url(wait=0), endpoint_url=aws.endpoint, register=False)

    @queue.task(name="noop")
    def noop() -> None:
        return None

    start = time.perf_counter()
    handles = [noop.defer_sync() for _ in range(n)]
    produced = n / (time.perf_counter() - start)
    start = time.perf_counter()
    asyncio.run(queue.worker(concurrency=10, poll_interval=0.01).run(burst=True))
    consumed = n / (time.perf_counter() - start)
    assert all(queue.status_sync(h.id).state.value == "succeeded" for h in handles[-5:])
    queue.close()
    return [
        ("holdfast SQS backend: produce", produced),
        ("holdfast SQS backend: consume", consumed),
    ]


def _plain_sqs(aws, n: int) -> list[tuple[str, float]]:
    sqs, url = aws.sqs, aws.queue_url
    start = time.perf_counter()
    for _ in range(n):
        sqs.send_message(QueueUrl=url, MessageBody='{"task":"noop"}')
    produced = n / (time.perf_counter() - start)
    start, done = time.perf_counter(), 0
    while done < n:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=0
        ).get("Messages", [])
        if messages:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
        done += len(messages)
    consumed = n / (time.perf_counter() - start)
    return [("plain boto3: produce", produced), ("plain boto3: consume", consumed)]


if __name__ == "__main__" and sys.argv[1:2] == ["crash"]:
    crash_main(sys.argv[2:])
elif __name__ == "__main__" and sys.argv[1:2] == ["sqs"]:
    sqs_main(sys.argv[2:])
elif __name__ == "__main__":
    # Run as the module `tasks`, the name the worker processes import it under: Huey
    # registers tasks by module-qualified name.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import tasks

    tasks.main()
