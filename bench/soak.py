"""A soak through `holdfast emulate -- holdfast run`: does memory grow with every invocation?

    .venv/bin/python bench/soak.py [--invocations 20000] [--clients 4] [--concurrency 4]

Starts `holdfast emulate` (a real process, as a user runs it) with the soak app
(bench/soak_apps/soak_app.py: a plain answer, after-response work, a streamed body, a 500) under
`holdfast run`, warms it up, then sends the invocations from `--clients` threads over kept-alive
HTTP connections to the front, the four routes in turn. A request throttled with 429 (every
environment busy: `holdfast emulate` answers as Lambda does) is retried after 5 ms and counted.
Every `--every` invocations it reads the resident set size (VmRSS in /proc) of the emulator and
of each runtime process (the emulator's children running `holdfast run`; a frozen process still
has its /proc entry), and prints the growth since the warm-up, per 10,000 invocations.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
ROUTES = ("/", "/background", "/stream", "/fail")


def rss_mb(pid: int) -> float:
    """The resident set size of `pid` in MB (0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else 0.0


def runtimes(parent: int) -> list[int]:
    """The emulator's children that run `holdfast run` (one per execution environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == parent and b"run" in cmdline and b"holdfast" in b" ".join(cmdline):
            found.append(int(entry.name))
    return sorted(found)


class Load:
    """`clients` threads sending requests until `total` have been answered."""

    def __init__(self, host: str, port: int, clients: int) -> None:
        self.host, self.port, self.clients = host, port, clients
        self.statuses: Counter[int] = Counter()
        self.throttled = 0
        self._lock = threading.Lock()

    def run(self, total: int) -> None:
        share = [total // self.clients + (k < total % self.clients) for k in range(self.clients)]
        threads = [threading.Thread(target=self._client, args=(k, n)) for k, n in enumerate(share)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _client(self, offset: int, count: int) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        sent = 0
        while sent < count:
            connection.request("GET", ROUTES[(sent + offset) % len(ROUTES)])
            response = connection.getresponse()
            response.read()
            with self._lock:
                if response.status == 429:
                    self.throttled += 1
                else:
                    self.statuses[response.status] += 1
            if response.status == 429:
                time.sleep(0.005)
                continue
            sent += 1
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invocations", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--every", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=1000)
    args = parser.parse_args()

    command = [sys.executable, "-m", "holdfast", "emulate", "--port", "0"]
    command += ["--concurrency", str(args.concurrency), "--"]
    command += [sys.executable, "-m", "holdfast", "run", "soak_app:app"]
    emulator = subprocess.Popen(
        command,
        cwd=HERE / "soak_apps",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert emulator.stderr is not None
        url = None
        for line in emulator.stderr:
            if match := re.search(r"listening on http://([\d.]+):(\d+)", line):
                url = (match[1], int(match[2]))
                break
        if url is None:
            raise SystemExit("holdfast emulate never said where it listens")
        # Keep reading what the processes write, so no pipe ever fills.
        threading.Thread(target=lambda: [None for _ in emulator.stderr], daemon=True).start()
        load = Load(url[0], url[1], args.clients)
        load.run(args.warmup)
        base_emulator = rss_mb(emulator.pid)
        base_runtimes = {pid: rss_mb(pid) for pid in runtimes(emulator.pid)}
        print(
            f"after {args.warmup} warm-up invocations: emulator {base_emulator:.1f} MB, "
            f"{len(base_runtimes)} runtimes "
            + ", ".join(f"{mb:.1f}" for mb in base_runtimes.values())
            + " MB"
        )
        print(f"{'invocations':>11}  {'emulator MB':>11}  {'growth/10k':>10}  runtimes MB (growth)")
        done = 0
        started = time.monotonic()
        while done < args.invocations:
            step = min(args.every, args.invocations - done)
            load.run(step)
            done += step
            emulator_mb = rss_mb(emulator.pid)
            per_10k = (emulator_mb - base_emulator) / done * 10000
            runtime_mbs = {pid: rss_mb(pid) for pid in runtimes(emulator.pid)}
            described = ", ".join(
                f"{mb:.1f} ({mb - base_runtimes.get(pid, mb):+.1f})"
                for pid, mb in runtime_mbs.items()
            )
            print(f"{done:>11}  {emulator_mb:>11.1f}  {per_10k:>+10.2f}  {described}", flush=True)
        elapsed = time.monotonic() - started
        statuses = dict(sorted(load.statuses.items()))
        print(
            f"{done} invocations in {elapsed:.0f} s ({done / elapsed:.0f}/s); statuses {statuses};"
            f" {load.throttled} throttled (429) and retried"
        )
    finally:
        emulator.send_signal(signal.SIGTERM)
        try:
            emulator.wait(30)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait()


if __name__ == "__main__":
    main()
