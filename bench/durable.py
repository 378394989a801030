"""Benchmark: durable after-response work (`after_response(task, ..., durable=True)`) under
`holdfast emulate`, with the function's runtime SIGKILLed in the middle of drains.

    .venv/bin/python bench/durable.py [--backend sqlite|sqs|both] [--host holdfast-run|awslambdaric]
                                      [--invocations 500] [--kills 20] [--latency-samples 300]

The function is tests/tasks/durable_app.py; one `holdfast tasks worker` process runs
throughout, as in production. Each invocation defers `record(n)` durably; a random subset
(`--kills` of them) gates its work until the runtime has been SIGKILLed mid-drain (the
response already out, the work not done), then releases it: the worker must finish it once
the write-ahead's lease (the invocation's deadline, 3 s here, + 10 s) is over. At the end,
every task must be `succeeded` and have run; counted:

* lost: tasks whose work never ran, or whose status never reached `succeeded`;
* duplicates: runs beyond the first (delivery is at least once);
* where each task ran: in its environment, or on the worker.

Latency: the extra response latency of the write-ahead is the time the `after_response(...)`
call itself takes on the response path (measured in the function, `durable=True` against a
plain `after_response`, interleaved), and for reference the client's whole round trip through
the emulator for both endpoints.

`sqs` starts a moto_server (SQS + DynamoDB) of its own.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_DIR = ROOT / "tests" / "tasks"
sys.path[:0] = [str(ROOT / "tests")]

from holdfast.emulator import ThreadedEmulator  # noqa: E402
from holdfast.tasks import TaskQueue, TaskState  # noqa: E402
from moto_support import AWS_ENV, REGION, moto_server  # noqa: E402

HOSTS = {
    "awslambdaric": [sys.executable, "-m", "awslambdaric", "durable_app.handler"],
    "holdfast-run": [sys.executable, "-m", "holdfast", "run", "durable_app:app"],
}
TIMEOUT = 3  # the function's timeout: the write-ahead's lease is this + 10 s


def _get(url: str, path: str) -> tuple[int, dict, float]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    began = time.perf_counter()
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    return (
        response.status,
        json.loads(body) if response.status == 200 else {},
        (time.perf_counter() - began),
    )


def _runs(record: Path) -> list[tuple[int, int]]:
    rows = (line.split() for line in record.read_text().splitlines())
    return [(int(n), int(pid)) for kind, n, pid, _ in rows if kind == "ran"]


def run(backend: str, host: str, invocations: int, kills: int, samples: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="holdfast-durable-"))
    record = folder / "record.txt"
    record.touch()
    env = {"HOLDFAST_TEST_RECORD": str(record)}
    if backend == "sqlite":
        env["HOLDFAST_TEST_URL"] = f"sqlite:///{folder / 'tasks.db'}"
        return _measure(env, record, host, invocations, kills, samples)
    with moto_server() as endpoint:
        import boto3

        from holdfast.tasks import create_table

        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
        url = sqs.create_queue(QueueName="durable", Attributes={"VisibilityTimeout": "30"})
        create_table("durable", endpoint_url=endpoint, region=REGION)
        env.update(AWS_ENV)
        env["AWS_ENDPOINT_URL"] = endpoint
        env["HOLDFAST_TEST_URL"] = f"sqs://{url['QueueUrl']}?table=durable&wait=1"
        return _measure(env, record, host, invocations, kills, samples)


def _measure(
    env: dict[str, str], record: Path, host: str, invocations: int, kills: int, samples: int
) -> dict:
    for key, value in env.items():
        os.environ[key] = value  # the status reads of this process
    queue = TaskQueue(env["HOLDFAST_TEST_URL"], endpoint_url=env.get("AWS_ENDPOINT_URL"))
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "holdfast",
            "tasks",
            "worker",
            "durable_app:queue",
            "--poll-interval",
            "0.05",
            "--log-level",
            "WARNING",
        ],
        cwd=APP_DIR,
        env={**os.environ, **env, "PYTHONPATH": str(APP_DIR)},
    )
    emulator = ThreadedEmulator(HOSTS[host], cwd=str(APP_DIR), env=env, timeout=TIMEOUT)
    emulator.start()
    killed_at = set(random.sample(range(invocations), kills))
    tasks: dict[int, str] = {}
    env_pids: dict[int, int] = {}
    kills_done = 0
    began = time.monotonic()
    try:
        for n in range(invocations):
            gate = n in killed_at
            status, body, _ = _get(emulator.url, f"/durable/{n}?gate={'true' if gate else 'false'}")
            if status != 200:
                print(f"invocation {n}: HTTP {status}", file=sys.stderr)
                continue
            tasks[n], env_pids[n] = body["task_id"], body["pid"]
            if gate:  # the drain is waiting on the gate: kill the runtime under it
                os.kill(body["pid"], signal.SIGKILL)
                kills_done += 1
                Path(f"{record}.release-{n}").touch()
        emulator.wait_idle(timeout=120)
        # Latency, interleaved, after the kills (a fresh environment, warmed).
        took = {"durable": [], "plain": []}
        round_trip = {"durable": [], "plain": []}
        for i in range(samples):
            for kind in ("durable", "plain") if i % 2 else ("plain", "durable"):
                n = 1_000_000 + 2 * i + (kind == "plain")
                status, body, elapsed = _get(emulator.url, f"/{kind}/{n}")
                if status == 200:
                    took[kind].append(body["took"])
                    round_trip[kind].append(elapsed)
                    if kind == "durable":
                        tasks[n], env_pids[n] = body["task_id"], body["pid"]
        emulator.wait_idle(timeout=120)
        deadline = time.monotonic() + 120 + TIMEOUT + 10
        while time.monotonic() < deadline:
            states = [queue.status_sync(task_id) for task_id in tasks.values()]
            if all(s is not None and s.state is TaskState.SUCCEEDED for s in states):
                break
            time.sleep(0.5)
        seconds = time.monotonic() - began
    finally:
        emulator.close()
        worker.terminate()
        worker.wait(30)
    runs = _runs(record)
    ran: dict[int, list[int]] = {}
    for n, pid in runs:
        ran.setdefault(n, []).append(pid)
    statuses = {n: queue.status_sync(task_id) for n, task_id in tasks.items()}
    not_succeeded = [
        n for n, s in statuses.items() if s is None or s.state is not TaskState.SUCCEEDED
    ]
    lost = sorted({n for n in tasks if n not in ran} | set(not_succeeded))
    duplicates = sum(len(pids) - 1 for n, pids in ran.items() if n in tasks)
    on_worker = sum(1 for n in tasks if ran.get(n) and ran[n][0] != env_pids[n])
    queue.close()

    def ms(values: list[float], q: float) -> float:
        values = sorted(values)
        return 1000 * values[min(len(values) - 1, int(q * len(values)))]

    return {
        "invocations": len(tasks),
        "kills": kills_done,
        "lost": len(lost),
        "lost_ids": lost[:10],
        "duplicates": duplicates,
        "ran_on_worker": on_worker,
        "seconds": round(seconds, 1),
        "write_ahead_extra_ms_p50": round(ms(took["durable"], 0.5) - ms(took["plain"], 0.5), 3),
        "write_ahead_extra_ms_p90": round(ms(took["durable"], 0.9) - ms(took["plain"], 0.9), 3),
        "call_ms_p50": {k: round(ms(v, 0.5), 3) for k, v in took.items()},
        "round_trip_ms_p50": {k: round(ms(v, 0.5), 2) for k, v in round_trip.items()},
        "round_trip_extra_ms_p50": round(
            statistics.median(round_trip["durable"]) * 1000
            - statistics.median(round_trip["plain"]) * 1000,
            2,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "sqs", "both"], default="both")
    parser.add_argument("--host", choices=sorted(HOSTS), default="holdfast-run")
    parser.add_argument("--invocations", type=int)
    parser.add_argument("--kills", type=int)
    parser.add_argument("--latency-samples", type=int, default=300)
    args = parser.parse_args()
    backends = ["sqlite", "sqs"] if args.backend == "both" else [args.backend]
    defaults = {"sqlite": (500, 20), "sqs": (200, 10)}
    for backend in backends:
        invocations = args.invocations or defaults[backend][0]
        kills = args.kills or defaults[backend][1]
        result = run(backend, args.host, invocations, kills, args.latency_samples)
        print(json.dumps({"backend": backend, "host": args.host, **result}), flush=True)


if __name__ == "__main__":
    main()
