"""``make bench``: every comparison of issue 17, side by side in one run, as one table of ratios.

    .venv/bin/python bench/run.py [--markdown] [--only SCRIPT] [--lambda-python PATH]

Runs each bench script in turn, one at a time (so none competes with another for the CPU),
each with ``--summary`` and short rounds, then prints the rows they wrote with the goal beside
each. The rounds are short so the whole run stays within about five minutes on two cores: a
ratio is measured side by side in one run (interleaved rounds, the same machine load for both
sides), so it is comparable; the absolute figures are not, on a shared machine. Each script
runs alone too, with longer defaults (see its docstring). Beside each result, the middle half
of the figure's values round by round: a goal inside it is marked ``~`` (the run cannot tell
whether it is met; a longer run of that script can). ``--markdown`` prints the table for
``bench/BASELINE.md``. ``--lambda-python`` runs the runtime comparison once more with both
runtimes on that interpreter (``make bench`` passes a Python 3.13 venv where python3.13 is
installed: Lambda runs 3.12-3.14, this venv may be older).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

#: (what, the script and its short-round arguments)
RUNS: list[tuple[str, list[str]]] = [
    ("adapter", ["adapter.py", "--budget", "25"]),
    ("import + construct", ["startup.py", "--rounds", "15"]),
    # Cold starts swing most between rounds: their own script, with more of them.
    ("cold start", ["cold_start.py", "--rounds", "12"]),
    ("runtime (req/s)", ["runtime.py", "--rounds", "5", "--requests", "300"]),
    ("emulator front", ["emulator.py", "--requests", "1000", "--cycles", "2"]),
    ("proxy", ["proxy.py", "--requests", "40", "--cycles", "2"]),
    (
        "tasks, SQLite vs Huey",
        ["tasks.py", "--tasks", "1000", "--rounds", "3", "--latency-samples", "30"],
    ),
    ("tasks, SQS vs boto3", ["tasks.py", "sqs", "--tasks", "100", "--rounds", "2"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--only", action="append", default=[], help="run only the scripts named (repeatable)"
    )
    parser.add_argument(
        "--lambda-python",
        metavar="PATH",
        help="also compare the runtimes with both on this interpreter (see above)",
    )
    args = parser.parse_args()
    runs = list(RUNS)
    if args.lambda_python:
        at = next(i for i, (what, _) in enumerate(runs) if what == "runtime (req/s)") + 1
        what, options = runs[at - 1]
        runs.insert(
            at, (f"{what}, on {args.lambda_python}", [*options, "--python", args.lambda_python])
        )
    rows: list[dict] = []
    failed: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="holdfast-bench-") as tmp:
        for what, (script, *options) in runs:
            if args.only and script.removesuffix(".py") not in args.only:
                continue
            summary = Path(tmp, f"{len(rows)}-{script}.json")
            print(f"== {what}: bench/{script} {' '.join(options)}", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            done = subprocess.run(
                [sys.executable, str(BENCH / script), *options, "--summary", str(summary)],
                cwd=BENCH.parent,
                stdout=sys.stderr,
            )
            print(f"   ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
            if done.returncode != 0 or not summary.exists():
                failed.append(f"bench/{script} (exit {done.returncode})")
                continue
            rows.extend(json.loads(summary.read_text()))
    elapsed = time.perf_counter() - started
    print_table(rows, markdown=args.markdown)
    print(
        f"\n{len(rows)} comparisons in {elapsed:.0f} s; short rounds: ratios measured side by side"
    )
    if failed:
        print("FAILED to run: " + ", ".join(failed))
        sys.exit(1)


def print_table(rows: list[dict], *, markdown: bool) -> None:
    columns = ("path", "holdfast", "peer", "result", "per round (middle half)", "goal", "met")
    table = [
        (
            row["path"],
            row["holdfast"],
            row["peer"],
            _result(row),
            _spread(row),
            row["goal"],
            _verdict(row),
        )
        for row in rows
    ]
    if markdown:
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
        for line in table:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max([len(c), *(len(line[i]) for line in table)]) for i, c in enumerate(columns)]
    print()
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
    print(
        "\nresult: from the medians over the run's rounds; per round: each round's own figure"
        " (both sides measured back to back), first to third quartile"
    )
    if any(line[-1].endswith("~") for line in table):
        print(
            "~ the goal lies within that middle half: this run cannot tell; the script run"
            " alone, with its longer defaults, can"
        )


def _verdict(row: dict) -> str:
    if row["met"] is None:
        return "-"
    verdict = "yes" if row["met"] else "NO"
    spread, goal = row.get("spread"), row.get("goal_value")
    if spread and goal is not None and spread[0] <= goal <= spread[1]:
        verdict += " ~"
    return verdict


def _spread(row: dict) -> str:
    spread = row.get("spread")
    if not spread:
        return "-"
    return f"{_figure(spread[0], row['unit'])} .. {_figure(spread[1], row['unit'])}"


def _result(row: dict) -> str:
    return _figure(row["ratio"], row["unit"])


def _figure(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "ms":
        return f"{value:+.2f} ms"
    return f"{value:,.0f} {unit}"


if __name__ == "__main__":
    main()
