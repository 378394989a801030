"""The emulator's own speed: sequential requests per second through `holdfast emulate`.

    .venv/bin/python bench/emulator.py [--requests N] [--cycles N]

One HTTP client sends ``GET /`` after ``GET /`` on one kept-alive connection to the front of
``holdfast emulate`` (v2 events, concurrency 1, the real freeze between invocations), whose
runtime is

* **raw runtime** (bench/emulator_apps/raw_runtime.py): one socket, ``/next``, post a constant
  answer — the cheapest runtime there is, so the figure is the emulator's front + Runtime API
  (+ freeze and thaw). Target (issue 17): >= 3,000 req/s, so that the front is never what a
  runtime benchmark measures;
* **holdfast run** with a trivial handler (bench/emulator_apps/trivial.py), for scale: what a
  real runtime adds.

Setups alternate over ``--cycles`` (2 shared cores); the figure is the median cycle's rate.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import summary

APPS = Path(__file__).resolve().parent / "emulator_apps"
PYTHON = sys.executable
WARMUP = 200

RUNTIMES = {
    "raw runtime": [PYTHON, "raw_runtime.py"],
    "holdfast run (trivial handler)": [PYTHON, "-m", "holdfast", "run", "trivial.handler"],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Setup:
    def __init__(self, name: str, runtime: list[str]) -> None:
        self.name = name
        self.port = _free_port()
        command = [PYTHON, "-m", "holdfast", "emulate", "--port", str(self.port), "--"]
        self.process = subprocess.Popen(
            [*command, *runtime],
            cwd=APPS,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.rates: list[float] = []
        self.connection = self._connect()
        for _ in range(WARMUP):
            self.request()

    def _connect(self) -> http.client.HTTPConnection:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                connection.request("GET", "/")
                if connection.getresponse().read() == b"ok":
                    return connection
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{self.name}: the emulator did not answer")
            time.sleep(0.1)

    def request(self) -> None:
        self.connection.request("GET", "/")
        response = self.connection.getresponse()
        if response.read() != b"ok" or response.status != 200:
            raise RuntimeError(f"{self.name}: answered {response.status}")

    def run(self, requests: int) -> None:
        started = time.perf_counter()
        for _ in range(requests):
            self.request()
        self.rates.append(requests / (time.perf_counter() - started))

    def close(self) -> None:
        self.connection.close()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per setup per cycle")
    parser.add_argument("--cycles", type=int, default=3, help="passes over the setups")
    summary.add_argument(parser)
    args = parser.parse_args()
    setups: list[Setup] = []
    try:
        for name, runtime in RUNTIMES.items():
            print(f"starting {name} ...", file=sys.stderr)
            setups.append(Setup(name, runtime))
        for cycle in range(args.cycles):
            for setup in setups if cycle % 2 == 0 else setups[::-1]:
                setup.run(args.requests)
            print(f"cycle {cycle + 1}/{args.cycles} done", file=sys.stderr)
    finally:
        for setup in setups:
            setup.close()
    print(
        "sequential GET / through the holdfast emulate front (v2 events, concurrency 1, real"
        f" freeze);\n{args.cycles} x {args.requests} requests per setup, one kept-alive client"
        " connection\n"
    )
    for setup in setups:
        rate = statistics.median(setup.rates)
        spread = ", ".join(f"{r:,.0f}" for r in setup.rates)
        print(f"{setup.name:<34}{rate:>10,.0f} req/s   ({1e3 / rate:.3f} ms each; cycles {spread})")
    print("\ntarget (issue 17): raw runtime >= 3,000 req/s")
    rates = {setup.name: statistics.median(setup.rates) for setup in setups}
    summary.write(
        args.summary,
        [
            summary.row(
                f"emulator front + Runtime API, {name}",
                f"{rate:,.0f} req/s",
                "-",
                rate,
                3000 if name == "raw runtime" else None,
                higher_is_better=True,
                unit="req/s",
            )
            for name, rate in rates.items()
        ],
    )


if __name__ == "__main__":
    main()
