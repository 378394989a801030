"""Proxy mode vs in-process: what forwarding each event to the app's own server costs.

    .venv/bin/python bench/proxy.py [--requests N] [--cycles N] [--calls N] [--baseline SRC]

One FastAPI app (bench/proxy_apps/px_app.py, with holdfast's completion middleware) is served
two ways under the holdfast emulator (a local Lambda that really freezes the environment between
invocations; concurrency 1; Function URL v2 events):

* **in-process**: ``holdfast run px_app:app`` — the adapter calls the app on its own loop;
* **proxy**: ``holdfast proxy -- uvicorn px_app:app`` — the same adapter and runtime, but each
  request goes over loopback HTTP to uvicorn (back-to-back invocations share a kept-alive
  connection: see holdfast/proxy/upstream.py for why none idle through a pause is used);
* **proxy, new connection each** (buffered only): the same with
  ``HOLDFAST_POOL_IDLE_TIMEOUT_SECONDS=0``, a loopback connect per invocation, for comparison.

uvicorn runs both ways a user gets it: **with httptools**, as FastAPI's install docs set it up
(``pip install "fastapi[standard]"`` brings ``uvicorn[standard]``, whose httptools uvicorn
then uses to parse HTTP/1.1), and **with h11**, its pure-Python parser (a bare
``pip install uvicorn``); each is chosen explicitly (``--http httptools`` / ``--http h11``).
The goal row (issue 17: at most +0.3 ms per invocation) is the httptools one, the setup
FastAPI documents; the h11 row is printed beside it. Neither installs uvloop (which
``uvicorn[standard]`` also brings): uvicorn runs on asyncio's own loop both ways. httptools is
in holdfast's dev extras only; holdfast itself never needs it.

The same pair also runs with a raw ASGI app (``bench/proxy_apps/px_trivial.py``: no framework, no
completion middleware), so the proxy's own cost shows apart from the app's.

Measured at an HTTP client of the emulator's front, waiting for the environment to freeze again
after each request, so every request meets a warm, idle environment, and **inside the
environment** (the emulator's records: from the thaw to the runtime's posted response, the
front and the client left out):

* **per invocation**: median latency of ``GET /plain`` (buffered mode), and its difference —
  the proxy's cost per invocation;
* **streaming time to first byte**: ``GET /stream`` in ``response_stream`` mode; the first chunk
  is sent at once, the second 200 ms later, so the first byte must arrive long before the end.

**holdfast's own share** is measured apart, in this process: the CPU time (``thread_time``: the
app server's work and the wait for it do not count) of one ``Adapter`` call per invocation with
the raw app in-process, as ``holdfast run`` calls it (no context headers), against the same call
through ``ProxyApp`` to uvicorn serving that app, as ``holdfast proxy`` makes it (context headers
on, the request built and sent, the answer read, the response passed on). Their difference is
what holdfast itself adds per invocation in proxy mode, loopback syscalls included.

``--baseline SRC`` also runs the proxy setups of the holdfast in SRC (a source directory, e.g.
``git archive main src | tar -x -C /tmp/base`` then ``/tmp/base/src``), for a before/after in
one run. ``bench/proxy_transport.py`` measures the transports themselves.

Setups run one after the other (2 shared cores), alternating over ``--cycles`` to spread drift.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import summary
from holdfast.emulator import ThreadedEmulator

APPS = Path(__file__).resolve().parent / "proxy_apps"
EVENTS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "events"
PYTHON = sys.executable
WARMUP = 10
OWN_SHARE_ROUNDS = 4
_WRAP = ["/bin/sh", "-c", 'exec "$@" >>"$HOLDFAST_BENCH_LOG" 2>&1', "sh"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _uvicorn(app: str, port: int, http: str) -> list[str]:
    where = ["--app-dir", str(APPS), "--port", str(port)]
    return [PYTHON, "-m", "uvicorn", app, *where, "--log-level", "warning", "--http", http]


def _command(mode: str, app: str, http: str) -> list[str]:
    if mode == "in-process":
        return [PYTHON, "-m", "holdfast", "run", app]
    port = _free_port()
    return [
        PYTHON,
        "-m",
        "holdfast",
        "proxy",
        "--port",
        str(port),
        "--",
        *_uvicorn(app, port, http),
    ]


@dataclass
class Setup:
    mode: str  # "in-process", "proxy" or "proxy-fresh"
    invoke_mode: str  # "buffered" or "response_stream"
    log: Path
    app: str = "px_app:app"
    #: uvicorn's HTTP parser behind the proxy: "httptools" or "h11".
    http: str = "httptools"
    #: Another holdfast's source directory to run (``--baseline``), or None for this one.
    source: str | None = None
    emulator: ThreadedEmulator | None = None
    connection: http.client.HTTPConnection | None = None
    samples: list[float] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)
    #: Inside the environment: from the thaw to the runtime's posted response.
    inside: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        raw = " raw" if self.app != "px_app:app" else ""
        baseline = "baseline " if self.source else ""
        http = f" {self.http}" if self.mode != "in-process" else ""
        return f"{baseline}{self.mode}{http}{raw} ({self.invoke_mode})"

    def start(self) -> None:
        env = {"HOLDFAST_BENCH_LOG": str(self.log), "HOLDFAST_INVOKE_MODE": self.invoke_mode}
        if self.mode == "proxy-fresh":
            env["HOLDFAST_POOL_IDLE_TIMEOUT_SECONDS"] = "0"
        if self.source:
            env["PYTHONPATH"] = self.source  # ahead of the installed (editable) holdfast
        self.emulator = ThreadedEmulator(
            [*_WRAP, *_command(self.mode, self.app, self.http)],
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
            assert self.emulator is not None
            record = self.emulator.freeze_log[-1]
            if record.thawed_at is not None and record.response_sent_at is not None:
                self.inside.append(record.response_sent_at - record.thawed_at)


def _cycle_medians(setup: Setup, requests: int) -> list[float]:
    """The median time of each cycle's ``requests`` requests (each cycle runs every setup)."""
    totals = setup.totals
    return [statistics.median(totals[i : i + requests]) for i in range(0, len(totals), requests)]


def bench(requests: int, cycles: int, baseline: str | None) -> list[Setup]:
    with tempfile.TemporaryDirectory(prefix="holdfast-bench-proxy-") as tmp:
        sources = [None, baseline] if baseline else [None]
        plans = [
            *(
                ("in-process", mode, "px_app:app", "", None)
                for mode in ("buffered", "response_stream")
            ),
            ("proxy", "response_stream", "px_app:app", "httptools", None),
            ("in-process", "buffered", "px_trivial:app", "", None),
            *(
                plan
                for source in sources
                for plan in (
                    ("proxy", "buffered", "px_app:app", "httptools", source),
                    ("proxy", "buffered", "px_app:app", "h11", source),
                    ("proxy-fresh", "buffered", "px_app:app", "httptools", source),
                    ("proxy", "buffered", "px_trivial:app", "httptools", source),
                    ("proxy", "buffered", "px_trivial:app", "h11", source),
                )
            ),
        ]
        setups = [
            Setup(mode, invoke_mode, Path(tmp, f"{number}.log"), app, http or "httptools", source)
            for number, (mode, invoke_mode, app, http, source) in enumerate(plans)
        ]
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


# -- holdfast's own share ------------------------------------------------------------------------
class _Context:
    aws_request_id = "bench-request"
    function_name = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def own_share(calls: int) -> dict[str, list[float]]:
    """CPU microseconds of each of ``calls`` ``Adapter`` calls in this thread, the raw app
    in-process (without and with context headers) and behind ``ProxyApp`` (see the module
    docs); and the proxied calls' elapsed time, the app server's work and the wait included."""
    from holdfast import Adapter
    from holdfast.config import ProxySettings
    from holdfast.proxy.app import ProxyApp

    sys.path.insert(0, str(APPS))
    from px_trivial import app

    event = json.loads((EVENTS / "function-url.json").read_text())
    event.update(rawPath="/plain", body=None)
    event["requestContext"]["http"].update(method="GET", path="/plain")
    context = _Context()
    port = _free_port()
    command = _uvicorn("px_trivial:app", port, "httptools")
    proxy_app = ProxyApp(command, ProxySettings(port=port, readiness_port=port), exclusive=True)
    handlers = {
        "in-process": Adapter(app, lifespan="off"),
        "in-process, context headers": Adapter(app, lifespan="off", context_headers=True),
        "proxy": Adapter(proxy_app, lifespan="on", context_headers=True),
    }
    samples: dict[str, list[float]] = {name: [] for name in [*handlers, "proxy, elapsed"]}
    try:
        for handler in handlers.values():
            handler.start()
            for _ in range(WARMUP * 10):
                assert handler(event, context)["statusCode"] == 200
        for _ in range(calls):
            for name, handler in handlers.items():
                started, elapsed = time.thread_time(), time.perf_counter()
                handler(event, context)
                samples[name].append((time.thread_time() - started) * 1e6)
            samples["proxy, elapsed"].append((time.perf_counter() - elapsed) * 1e6)
    finally:
        for handler in handlers.values():
            handler.close()
    return samples


def own_shares(sources: list[str | None], calls: int) -> list[dict[str, float]]:
    """The median of `own_share` for the holdfast in each source (None: this one), each in
    processes of its own, alternating over rounds as the setups do (drift spreads evenly)."""
    samples: list[dict[str, list[float]]] = [{} for _ in sources]
    for _ in range(OWN_SHARE_ROUNDS):
        for source, collected in zip(sources, samples, strict=True):
            env = {**os.environ, "PYTHONPATH": source} if source else None
            command = [PYTHON, __file__, "--own-share", "--calls", str(calls // OWN_SHARE_ROUNDS)]
            result = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            for name, values in json.loads(result.stdout).items():
                collected.setdefault(name, []).extend(values)
    return [
        {name: statistics.median(values) for name, values in collected.items()}
        for collected in samples
    ]


def report_own_share(shares: dict[str, dict[str, float]], calls: int) -> None:
    print(
        f"\nholdfast's own share: CPU per invocation in the holdfast process (thread time, the"
        f" app server's\nwork and the wait for it not counted), raw ASGI app, median of {calls}"
        f" calls, in us;\nproxy elapsed: the proxied call from start to end (uvicorn with httptools"
        f" answering in it)\n"
    )
    header = f"{'':<14}{'in-process':>12}{'+ context headers':>20}{'proxy':>10}{'own share':>12}"
    header += f"{'proxy elapsed':>16}"
    print(header)
    print("-" * len(header))
    for label, share in shares.items():
        inproc, proxied = share["in-process"], share["proxy"]
        print(
            f"{label:<14}{inproc:>12.1f}{share['in-process, context headers']:>20.1f}"
            f"{proxied:>10.1f}{proxied - inproc:>+12.1f}{share['proxy, elapsed']:>16.1f}"
        )


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3 if values else float("nan")


ROWS = [
    (
        "GET /plain, buffered (httptools)",
        "in-process (buffered)",
        "proxy httptools (buffered)",
        "totals",
    ),
    ("  inside the environment", "in-process (buffered)", "proxy httptools (buffered)", "inside"),
    ("GET /plain, buffered (h11)", "in-process (buffered)", "proxy h11 (buffered)", "totals"),
    ("  inside the environment", "in-process (buffered)", "proxy h11 (buffered)", "inside"),
    (
        "  new connection each (httptools)",
        "in-process (buffered)",
        "proxy-fresh httptools (buffered)",
        "totals",
    ),
    (
        "  new connection each, inside",
        "in-process (buffered)",
        "proxy-fresh httptools (buffered)",
        "inside",
    ),
    (
        "raw ASGI app, buffered (httptools)",
        "in-process raw (buffered)",
        "proxy httptools raw (buffered)",
        "totals",
    ),
    (
        "  inside the environment",
        "in-process raw (buffered)",
        "proxy httptools raw (buffered)",
        "inside",
    ),
    (
        "raw ASGI app, buffered (h11)",
        "in-process raw (buffered)",
        "proxy h11 raw (buffered)",
        "totals",
    ),
    ("  inside the environment", "in-process raw (buffered)", "proxy h11 raw (buffered)", "inside"),
    (
        "GET /stream: first byte",
        "in-process (response_stream)",
        "proxy httptools (response_stream)",
        "samples",
    ),
    (
        "GET /stream: last byte",
        "in-process (response_stream)",
        "proxy httptools (response_stream)",
        "totals",
    ),
]


def report(setups: list[Setup], requests: int, cycles: int) -> None:
    by_name = {setup.name: setup for setup in setups}
    baseline = any(setup.source for setup in setups)
    print(
        f"FastAPI app in-process (holdfast run) vs behind holdfast proxy (uvicorn), under the"
        f" holdfast emulator\n(real freeze, concurrency 1, v2 events); {cycles} x {requests}"
        f" requests per setup, medians in ms: at the HTTP client, and inside the environment"
        f"\n(from the thaw to the runtime's posted response: the front and client left out)\n"
    )
    header = f"{'measure':<34}{'in-process':>12}{'proxy':>10}{'difference':>12}"
    if baseline:
        header += f"{'baseline proxy':>16}{'difference':>12}"
    print(header)
    print("-" * len(header))
    for label, inproc_name, proxy_name, attribute in ROWS:
        inproc = _median_ms(getattr(by_name[inproc_name], attribute))
        proxy = _median_ms(getattr(by_name[proxy_name], attribute))
        line = f"{label:<34}{inproc:>12.2f}{proxy:>10.2f}{proxy - inproc:>+12.2f}"
        if baseline:
            before = by_name.get(f"baseline {proxy_name}")
            if before is not None:
                then = _median_ms(getattr(before, attribute))
                line += f"{then:>16.2f}{then - inproc:>+12.2f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50, help="requests per setup per cycle")
    parser.add_argument("--cycles", type=int, default=2, help="passes over the setups")
    parser.add_argument(
        "--calls", type=int, default=2000, help="calls per handler for holdfast's own share"
    )
    parser.add_argument(
        "--baseline",
        metavar="SRC",
        help="also run the proxy of the holdfast in SRC (e.g. `git archive main src | tar -x`)",
    )
    parser.add_argument("--own-share", action="store_true", help=argparse.SUPPRESS)
    summary.add_argument(parser)
    args = parser.parse_args()
    if args.own_share:  # the child process of _own_share_of
        print(json.dumps(own_share(args.calls)))
        return
    sources = {"this holdfast": None, **({"baseline": args.baseline} if args.baseline else {})}
    medians = own_shares(list(sources.values()), args.calls)
    shares = dict(zip(sources, medians, strict=True))
    setups = bench(args.requests, args.cycles, args.baseline)
    report(setups, args.requests, args.cycles)
    report_own_share(shares, args.calls)
    by_name = {setup.name: statistics.median(setup.totals) for setup in setups}
    inproc = by_name["in-process (buffered)"]
    share = shares["this holdfast"]
    rows = []
    by_setup = {setup.name: setup for setup in setups}
    for parser, goal in (("httptools", 0.3), ("h11", None)):
        proxied = by_name[f"proxy {parser} (buffered)"]
        per_cycle = zip(
            _cycle_medians(by_setup[f"proxy {parser} (buffered)"], args.requests),
            _cycle_medians(by_setup["in-process (buffered)"], args.requests),
            strict=True,
        )
        rows.append(
            summary.row(
                f"holdfast proxy -- uvicorn ({parser}) vs holdfast run, per invocation (buffered)",
                f"{proxied * 1e3:.2f} ms",
                f"in-process {inproc * 1e3:.2f} ms",
                (proxied - inproc) * 1e3,
                goal,
                unit="ms",
                rounds=[(ours - theirs) * 1e3 for ours, theirs in per_cycle],
            )
        )
    rows.append(
        summary.row(
            "holdfast proxy: holdfast's own CPU per invocation over holdfast run (raw app)",
            f"{share['proxy']:.0f} us",
            f"in-process {share['in-process']:.0f} us",
            share["proxy"] - share["in-process"],
            None,
            unit="us",
        )
    )
    summary.write(args.summary, rows)


if __name__ == "__main__":
    main()
