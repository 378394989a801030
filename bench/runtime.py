"""``holdfast run`` against AWS's runtime interface client with Mangum, through one emulator.

    .venv/bin/python bench/runtime.py [--rounds N] [--requests N] [--python PATH] [--baseline SRC]

The same FastAPI hello app (``GET /hello`` → ``{"message": "hello"}``) answers a Function URL
event under the holdfast emulator (which freezes the runtime with SIGSTOP between events, as
Lambda does), run either by

* ``holdfast run bench_runtime_app:app`` — the custom runtime, or
* ``python -m awslambdaric bench_runtime_app.handler`` — AWS's runtime interface client with
  ``handler = Mangum(app, lifespan="off")`` (Mangum's fastest setting: with the default it runs
  the lifespan protocol on every invocation).

Two numbers per runtime: **requests/s**, sequential invocations against a warm environment, and
**cold start**, the time from asking a fresh emulator for an invocation (it then starts the
process) to having the response. The machine is shared and noisy, so the runtimes are
interleaved: each round starts both in fresh emulators (in alternating order) and then sends
their requests in alternating batches of ``--batch``, so both meet the same load from the rest
of the machine (the one not served meanwhile sits frozen); the table shows medians over rounds,
and ratios are holdfast / awslambdaric. Both run with the same emulator
settings and compiled bytecode. The event is encoded once: the client shares the emulator's
thread, and encoding it per request would add its cost to whichever runtime leaves the emulator
less idle time to hide it in.

Both runtimes run on this interpreter unless ``--python`` names another: Lambda's Python
runtimes are 3.12-3.14, and from 3.12 on asyncio starts a task eagerly, which ``holdfast run``
uses (``make bench`` runs this comparison on both, where Python 3.13 is installed).
``--baseline SRC`` also runs the ``holdfast run`` of another holdfast's source directory (e.g.
``git archive main src | tar -x -C /tmp/base``) in the same rounds, for a before/after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import summary
from holdfast.emulator import Emulator

APP = """\
from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/hello")
async def hello():
    return {"message": "hello"}


handler = Mangum(app, lifespan="off")
"""

EVENT = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/hello",
    "rawQueryString": "",
    "headers": {
        "accept": "application/json",
        "host": "abcdefgh.lambda-url.us-east-1.on.aws",
        "user-agent": "bench",
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
    },
    "requestContext": {
        "accountId": "anonymous",
        "apiId": "abcdefgh",
        "domainName": "abcdefgh.lambda-url.us-east-1.on.aws",
        "domainPrefix": "abcdefgh",
        "http": {
            "method": "GET",
            "path": "/hello",
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.7",
            "userAgent": "bench",
        },
        "requestId": "bench",
        "routeKey": "$default",
        "stage": "$default",
        "time": "01/Jan/2025:00:00:00 +0000",
        "timeEpoch": 1735689600000,
    },
    "isBase64Encoded": False,
}

PAYLOAD = json.dumps(EVENT).encode()

RUNTIMES = {
    "holdfast run": ["-m", "holdfast", "run", "bench_runtime_app:app"],
    "awslambdaric+Mangum": ["-m", "awslambdaric", "bench_runtime_app.handler"],
}
#: The interpreter both runtimes run on (``--python``); the emulator runs on this one.
PYTHON = [sys.executable]
#: ``--baseline SRC``: ``holdfast run`` from another holdfast's sources, in the same rounds.
BASELINE = "baseline holdfast run"
GOAL_RPS_RATIO = 1.3


def _bytecode_cache(directory: str) -> dict[str, str]:
    # Compiled modules for both runtimes alike. Without this, where PYTHONDONTWRITEBYTECODE is
    # set, holdfast (installed editable from src/, no .pyc files) would compile its modules at
    # every start while the site-packages of the other side ship compiled.
    return {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": directory}


async def measure(
    runtimes: dict[str, tuple[list[str], dict[str, str]]],
    order: list[str],
    cwd: str,
    requests: int,
    batch: int,
) -> dict[str, dict[str, float]]:
    """One round: each runtime (command, environment) cold in a fresh emulator, then
    sequential requests against the warm environments, the runtimes taking turns batch by
    batch."""
    async with contextlib.AsyncExitStack() as stack:
        emulators: dict[str, Emulator] = {}
        cold: dict[str, float] = {}
        for name in order:
            command, env = runtimes[name]
            options = {"cwd": cwd, "timeout": 30, "env": env, "log": lambda line: None}
            emulator = await stack.enter_async_context(Emulator(command, **options))
            started = time.perf_counter()
            first = await emulator.invoke(payload=PAYLOAD)
            cold[name] = time.perf_counter() - started
            _check(first.json())
            for _ in range(20):  # warm up: caches, the allocator, branch predictors
                await emulator.invoke(payload=PAYLOAD)
            emulators[name] = emulator
        elapsed = dict.fromkeys(order, 0.0)
        for done in range(0, requests, batch):
            for name in order:
                emulator = emulators[name]
                started = time.perf_counter()
                for _ in range(min(batch, requests - done)):
                    result = await emulator.invoke(payload=PAYLOAD)
                elapsed[name] += time.perf_counter() - started
                _check(result.json())
        figures = {}
        for name, emulator in emulators.items():
            await emulator.wait_idle()
            figures[name] = _figures(emulator.freeze_log[-requests:])
            figures[name].update(cold=cold[name], rps=requests / elapsed[name])
    return figures


def _figures(records: list[Any]) -> dict[str, float]:
    # Inside the environment: from the event's dispatch to the response, and to the freeze.
    to_response = [r.response_sent_at - r.started_at for r in records if r.response_sent_at]
    to_freeze = [r.frozen_at - r.started_at for r in records if r.frozen_at]
    return {
        "to_response": statistics.median(to_response),
        "to_freeze": statistics.median(to_freeze),
    }


def _check(response: dict) -> None:
    if response.get("statusCode") != 200 or '"hello"' not in response.get("body", ""):
        raise SystemExit(f"unexpected response: {response}")


async def bench(
    rounds: int, requests: int, batch: int, baseline: str | None
) -> dict[str, dict[str, list[float]]]:
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryDirectory() as cache:
        Path(cwd, "bench_runtime_app.py").write_text(APP)
        env = _bytecode_cache(cache)
        runtimes = {name: ([*PYTHON, *args], env) for name, args in RUNTIMES.items()}
        if baseline:
            command, _ = runtimes["holdfast run"]
            runtimes[BASELINE] = (command, {**env, "PYTHONPATH": baseline})
        results: dict[str, dict[str, list[float]]] = {name: {} for name in runtimes}
        names = list(runtimes)
        await measure(runtimes, names, cwd, 1, 1)  # fills the bytecode cache; not measured
        for round_no in range(rounds):
            order = names if round_no % 2 == 0 else list(reversed(names))
            for name, figures in (await measure(runtimes, order, cwd, requests, batch)).items():
                for key, value in figures.items():
                    results[name].setdefault(key, []).append(value)
            print(f"round {round_no + 1}/{rounds} done", file=sys.stderr)
    return results


def report(results: dict[str, dict[str, list[float]]], rounds: int, requests: int) -> None:
    median = {name: {k: statistics.median(v) for k, v in m.items()} for name, m in results.items()}
    ours, theirs = (median[name] for name in RUNTIMES)
    print(f"FastAPI hello through the holdfast emulator: {rounds} rounds of {requests} sequential")
    print("requests each, interleaved; medians over rounds\n")
    header = (
        f"{'runtime':<22}{'requests/s':>11}{'cold start':>13}{'to response':>14}{'to freeze':>12}"
    )
    print(header)
    for name, m in median.items():
        print(
            f"{name:<22}{m['rps']:>11.0f}{m['cold'] * 1e3:>10.1f} ms"
            f"{m['to_response'] * 1e6:>11.0f} us{m['to_freeze'] * 1e6:>9.0f} us"
        )
    rps_ratio = ours["rps"] / theirs["rps"]
    cold_ratio = ours["cold"] / theirs["cold"]
    # Each round measured both runtimes back to back: the spread of their ratios over rounds.
    per_round = {
        key: sorted(summary.ratios(*(results[n][key] for n in RUNTIMES))) for key in ("rps", "cold")
    }
    print(
        f"\nrequests/s   holdfast / awslambdaric: {rps_ratio:.2f}x"
        f"  (goal >= {GOAL_RPS_RATIO}x: {'met' if rps_ratio >= GOAL_RPS_RATIO else 'NOT met'})"
    )
    print(
        f"cold start   holdfast / awslambdaric: {cold_ratio:.2f}x"
        "  (few rounds: bench/cold_start.py measures the goal, <= 1.02x)"
    )
    print(
        f"per round    requests/s {per_round['rps'][0]:.2f}x .. {per_round['rps'][-1]:.2f}x,"
        f" cold start {per_round['cold'][0]:.2f}x .. {per_round['cold'][-1]:.2f}x"
    )
    print(
        f"to response  awslambdaric / holdfast: {theirs['to_response'] / ours['to_response']:.2f}x"
        f"   to freeze: {theirs['to_freeze'] / ours['to_freeze']:.2f}x  (higher = holdfast faster)"
    )
    print(
        "\n'to response' / 'to freeze': inside the environment, from the event's dispatch to the"
        "\nposted response / to the freeze after the runtime's next /next (emulator FreezeRecords)."
        "\nrequests/s also pays the emulator's own per-invocation work (invoke call, thaw, freeze)."
    )
    if BASELINE in median:
        before = median[BASELINE]
        now_vs_before = ours["rps"] / before["rps"]
        print(
            f"\nbaseline     requests/s holdfast run / baseline: {now_vs_before:.2f}x,"
            f" baseline / awslambdaric: {before['rps'] / theirs['rps']:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument(
        "--batch", type=int, default=50, help="requests a runtime gets before the other's turn"
    )
    parser.add_argument(
        "--baseline", metavar="SRC", help="also run the holdfast run of the sources in SRC"
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="the interpreter both runtimes run on, with holdfast, FastAPI, Mangum and"
        " awslambdaric installed (default: this one); e.g. Lambda's Python version",
    )
    summary.add_argument(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    version = _version(args.python or sys.executable)
    if args.python:
        # Absolute (not resolved: a venv's python is a link), as the runtimes start elsewhere.
        PYTHON[:] = [os.path.abspath(args.python)]
    print(f"both runtimes on Python {version}", file=sys.stderr)
    results = asyncio.run(bench(args.rounds, args.requests, args.batch, args.baseline))
    report(results, args.rounds, args.requests)
    ours, theirs = ({k: statistics.median(v) for k, v in results[n].items()} for n in RUNTIMES)
    on = f", Python {version}" if args.python else ""
    summary.write(
        args.summary,
        [
            summary.row(
                f"sequential req/s through the emulator front, holdfast run vs awslambdaric{on}",
                f"{ours['rps']:,.0f}/s",
                f"{theirs['rps']:,.0f}/s",
                ours["rps"] / theirs["rps"],
                GOAL_RPS_RATIO,
                higher_is_better=True,
                rounds=summary.ratios(*(results[n]["rps"] for n in RUNTIMES)),
            ),
        ],
    )


def _version(python: str) -> str:
    """``major.minor.micro`` of the interpreter at ``python``."""
    code = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


if __name__ == "__main__":
    main()
