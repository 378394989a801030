"""Proxy mode vs in-process: what forwarding each event to the app's own server costs.

    .venv/bin/python bench/proxy.py [--requests N] [--cycles N]

One FastAPI app (bench/proxy_apps/px_app.py, with holdfast's completion middleware) is served
two ways under the holdfast emulator (a local Lambda that really freezes the environment between
invocations; concurrency 1; Function URL v2 events):

* **in-process**: ``holdfast run px_app:app`` — the adapter calls the app on its own loop;
* **proxy**: ``holdfast proxy -- uvicorn px_app:app`` — the same adapter and runtime, but each
  request goes over loopback HTTP to uvicorn (back-to-back invocations share a kept-alive
  connection: see holdfast/proxy/upstream.py for why none idle through a pause is used);
* **proxy, new connection each** (buffered only): the same with
  ``HOLDFAST_POOL_IDLE_TIMEOUT_SECONDS=0``, a loopback connect per invocation, for comparison.

Measured at an HTTP client of the emulator's front, waiting for the environment to freeze again
after each request, so every request meets a warm, idle environment:

* **per invocation**: median latency of ``GET /plain`` (buffered mode), and its difference —
  the proxy's own cost per invocation;
* **streaming time to first byte**: ``GET /stream`` in ``response_stream`` mode; the first chunk
  is sent at once, the second 200 ms later, so the first byte must arrive long before the end.

Setups run one after the other (2 shared cores), alternating over ``--cycles`` to spread drift.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import summary
from holdfast.emulator import ThreadedEmulator

APPS = Path(__file__).resolve().parent / "proxy_apps"
PYTHON = sys.executable
WARMUP = 10
_WRAP = ["/bin/sh", "-c", 'exec "$@" >>"$HOLDFAST_BENCH_LOG" 2>&1', "sh"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(mode: str) -> list[str]:
    if mode == "in-process":
        return [PYTHON, "-m", "holdfast", "run", "px_app:app"]
    port = str(_free_port())
    server = [PYTHON, "-m", "uvicorn", "px_app:app", "--port", port, "--log-level", "warning"]
    return [PYTHON, "-m", "holdfast", "proxy", "--port", port, "--", *server]


@dataclass
class Setup:
    mode: str  # "in-process", "proxy" or "proxy-fresh"
    invoke_mode: str  # "buffered" or "response_stream"
    log: Path
    emulator: ThreadedEmulator | None = None
    connection: http.client.HTTPConnection | None = None
    samples: list[float] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.mode} ({self.invoke_mode})"

    def start(self) -> None:
        env = {"HOLDFAST_BENCH_LOG": str(self.log), "HOLDFAST_INVOKE_MODE": self.invoke_mode}
        if self.mode == "proxy-fresh":
            env["HOLDFAST_POOL_IDLE_TIMEOUT_SECONDS"] = "0"
        self.emulator = ThreadedEmulator(
            [*_WRAP, *_command(self.mode)],
            cwd=str(APPS),
            env=env,
            timeout=30,
            concurrency=1,
            event_format="v2",
            invoke_mode=self.invoke_mode,  # type: ignore[arg-type]
            log=lambda line: None,
        )
        self.emulator.start()
        for _ in range(WARMUP):
            self.request()

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.emulator is not None:
            self.emulator.close()

    def request(self) -> tuple[float, float]:
        """One request: (time to the first body byte, time to the end), in seconds."""
        assert self.emulator is not None
        if self.connection is None:
            host, port = self.emulator.url.removeprefix("http://").rsplit(":", 1)
            self.connection = http.client.HTTPConnection(host, int(port), timeout=60)
        path = "/plain" if self.invoke_mode == "buffered" else "/stream"
        started = time.perf_counter()
        self.connection.request("GET", path)
        response = self.connection.getresponse()
        first = response.read(1)
        first_at = time.perf_counter() - started
        rest = response.read()
        total = time.perf_counter() - started
        if response.status != 200 or not first:
            raise RuntimeError(f"{self.name}: GET {path}: {response.status} {first + rest!r}")
        self.emulator.wait_idle(timeout=60)
        return first_at, total

    def run(self, requests: int) -> None:
        for _ in range(requests):
            first, total = self.request()
            self.samples.append(first)
            self.totals.append(total)


def bench(requests: int, cycles: int) -> list[Setup]:
    with tempfile.TemporaryDirectory(prefix="holdfast-bench-proxy-") as tmp:
        setups = [
            Setup(mode, invoke_mode, Path(tmp, f"{mode}-{invoke_mode}.log"))
            for invoke_mode in ("buffered", "response_stream")
            for mode in ("in-process", "proxy")
        ]
        setups.append(Setup("proxy-fresh", "buffered", Path(tmp, "proxy-fresh-buffered.log")))
        try:
            for setup in setups:
                print(f"starting {setup.name} ...", file=sys.stderr)
                setup.start()
            for cycle in range(cycles):
                for setup in setups if cycle % 2 == 0 else setups[::-1]:
                    setup.run(requests)
                print(f"cycle {cycle + 1}/{cycles} done", file=sys.stderr)
        finally:
            for setup in setups:
                setup.close()
    return setups


def report(setups: list[Setup], requests: int, cycles: int) -> None:
    by_name = {setup.name: setup for setup in setups}
    print(
        f"FastAPI app in-process (holdfast run) vs behind holdfast proxy (uvicorn), under the"
        f" holdfast emulator\n(real freeze, concurrency 1, v2 events); {cycles} x {requests}"
        f" requests per setup, medians at the HTTP client\n"
    )
    plain_in = statistics.median(by_name["in-process (buffered)"].totals)
    plain_px = statistics.median(by_name["proxy (buffered)"].totals)
    plain_fresh = statistics.median(by_name["proxy-fresh (buffered)"].totals)
    ttfb_in = statistics.median(by_name["in-process (response_stream)"].samples)
    ttfb_px = statistics.median(by_name["proxy (response_stream)"].samples)
    end_in = statistics.median(by_name["in-process (response_stream)"].totals)
    end_px = statistics.median(by_name["proxy (response_stream)"].totals)
    header = f"{'measure':<44}{'in-process':>12}{'proxy':>12}{'proxy/in-process':>18}"
    print(header)
    print("-" * len(header))
    rows = [
        ("GET /plain, buffered: latency (ms)", plain_in, plain_px),
        ("GET /plain, buffered, new connection each (ms)", plain_in, plain_fresh),
        ("GET /stream, response_stream: first byte (ms)", ttfb_in, ttfb_px),
        ("GET /stream, response_stream: last byte (ms)", end_in, end_px),
    ]
    for label, inproc, proxy in rows:
        print(f"{label:<44}{inproc * 1e3:>12.2f}{proxy * 1e3:>12.2f}{proxy / inproc:>17.2f}x")
    print(
        f"\nproxy cost per invocation (buffered): {(plain_px - plain_in) * 1e3:+.2f} ms"
        f" (a new connection each: {(plain_fresh - plain_in) * 1e3:+.2f} ms);"
        f" streaming first byte: {(ttfb_px - ttfb_in) * 1e3:+.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50, help="requests per setup per cycle")
    parser.add_argument("--cycles", type=int, default=2, help="passes over the setups")
    summary.add_argument(parser)
    args = parser.parse_args()
    setups = bench(args.requests, args.cycles)
    report(setups, args.requests, args.cycles)
    by_name = {setup.name: statistics.median(setup.totals) for setup in setups}
    inproc, proxied = by_name["in-process (buffered)"], by_name["proxy (buffered)"]
    summary.write(
        args.summary,
        [
            summary.row(
                "holdfast proxy -- uvicorn vs holdfast run, per invocation (buffered)",
                f"{proxied * 1e3:.2f} ms",
                f"in-process {inproc * 1e3:.2f} ms",
                (proxied - inproc) * 1e3,
                0.3,
                unit="ms",
            )
        ],
    )


if __name__ == "__main__":
    main()
