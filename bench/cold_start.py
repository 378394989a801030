"""Cold start alone: ``holdfast run`` against awslambdaric + Mangum, more rounds, split in parts.

    .venv/bin/python bench/cold_start.py [--rounds N] [--baseline SRC]

The FastAPI hello app of ``bench/runtime.py`` (the same app, event and emulator settings, with
compiled bytecode for both sides) is started cold in a fresh emulator each round, runtimes
interleaved in alternating order. Three figures per cold start, medians over the rounds:

* **cold start**: from asking for the invocation (the emulator then starts the process) to having
  the response: what ``bench/runtime.py`` reports and ``make bench`` checks (goal <= 1.02x);
* **init**: the emulator's Init Duration (process start to the runtime's first ``/next``);
* **first invocation**: inside the environment, from the event's dispatch to the posted
  response.

``--baseline SRC`` also runs the ``holdfast run`` of another holdfast's source directory (e.g.
``git archive main src | tar -x -C /tmp/base``), for a before/after in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import summary
from holdfast.emulator import Emulator
from runtime import APP, PAYLOAD, _bytecode_cache, _check

HOLDFAST = [sys.executable, "-m", "holdfast", "run", "bench_runtime_app:app"]
RUNTIMES = {
    "holdfast run": HOLDFAST,
    "awslambdaric+Mangum": [sys.executable, "-m", "awslambdaric", "bench_runtime_app.handler"],
}


async def cold(command: list[str], cwd: str, env: dict[str, str]) -> dict[str, float]:
    options = {"cwd": cwd, "timeout": 30, "env": env, "log": lambda line: None}
    async with Emulator(command, **options) as emulator:
        started = time.perf_counter()
        result = await emulator.invoke(payload=PAYLOAD)
        total = time.perf_counter() - started
        _check(result.json())
        await emulator.wait_idle()
        record = emulator.freeze_log[0]
        report = emulator.reports[0]
    assert record.response_sent_at is not None
    return {
        "cold start": total,
        "init": (report.init_duration_ms or float("nan")) / 1e3,
        "first invocation": record.response_sent_at - record.started_at,
    }


async def bench(rounds: int, baseline: str | None) -> dict[str, dict[str, list[float]]]:
    runtimes = dict(RUNTIMES)
    envs = {name: {} for name in runtimes}
    if baseline:
        runtimes["baseline holdfast run"] = HOLDFAST
        envs["baseline holdfast run"] = {"PYTHONPATH": baseline}
    results: dict[str, dict[str, list[float]]] = {name: {} for name in runtimes}
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryDirectory() as cache:
        Path(cwd, "bench_runtime_app.py").write_text(APP)
        common = _bytecode_cache(cache)
        for name, command in runtimes.items():  # fills the bytecode cache; not measured
            await cold(command, cwd, {**common, **envs[name]})
        for round_no in range(rounds):
            order = list(runtimes) if round_no % 2 == 0 else list(reversed(runtimes))
            for name in order:
                measured = await cold(runtimes[name], cwd, {**common, **envs[name]})
                for key, value in measured.items():
                    results[name].setdefault(key, []).append(value)
            print(f"round {round_no + 1}/{rounds} done", file=sys.stderr)
    return results


def report(results: dict[str, dict[str, list[float]]], rounds: int) -> None:
    print(f"FastAPI hello, cold, through the holdfast emulator: medians of {rounds} rounds (ms)\n")
    keys = ("cold start", "init", "first invocation")
    print(f"{'runtime':<24}" + "".join(f"{key:>18}" for key in keys))
    median = {name: {k: statistics.median(v) for k, v in m.items()} for name, m in results.items()}
    for name, figures in median.items():
        print(f"{name:<24}" + "".join(f"{figures[key] * 1e3:>18.1f}" for key in keys))
    peer = median["awslambdaric+Mangum"]
    print()
    for name in median:
        if name != "awslambdaric+Mangum":
            ratios = "".join(f"{median[name][key] / peer[key]:>17.3f}x" for key in keys)
            print(f"{name + ' / peer':<24}{ratios}")
    # Load spikes only ever add time: the fastest round is the least disturbed one.
    fastest = {name: min(m["cold start"]) for name, m in results.items()}
    peer_fastest = fastest["awslambdaric+Mangum"]
    print("\nfastest round's cold start (ms), and / peer:")
    for name, value in fastest.items():
        print(f"  {name:<24}{value * 1e3:>8.1f}{value / peer_fastest:>9.3f}x")
    ours, theirs = (
        results["holdfast run"]["cold start"],
        results["awslambdaric+Mangum"]["cold start"],
    )
    per_round = sorted(summary.ratios(ours, theirs))
    print(f"cold start per round, holdfast run / peer: {per_round[0]:.2f}x .. {per_round[-1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--baseline", metavar="SRC", help="also run the holdfast in SRC")
    summary.add_argument(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = asyncio.run(bench(args.rounds, args.baseline))
    report(results, args.rounds)
    ours, theirs = (
        statistics.median(results[name]["cold start"])
        for name in ("holdfast run", "awslambdaric+Mangum")
    )
    summary.write(
        args.summary,
        [
            summary.row(
                "cold start, FastAPI app, holdfast run vs awslambdaric + Mangum (init)",
                f"{ours * 1e3:.0f} ms",
                f"{theirs * 1e3:.0f} ms",
                ours / theirs,
                1.02,
                rounds=summary.ratios(
                    results["holdfast run"]["cold start"],
                    results["awslambdaric+Mangum"]["cold start"],
                ),
            )
        ],
    )


if __name__ == "__main__":
    main()
