"""Import and construction of the adapter, no framework: holdfast against Mangum.

    .venv/bin/python bench/startup.py [--rounds N] [--summary PATH]

Each sample is a fresh interpreter that times, with ``perf_counter``, importing the adapter and
wrapping a raw ASGI app in it (``holdfast.Adapter(app)``; ``Mangum(app, lifespan="off")``): what
an init phase spends on the adapter before the app's own imports. The interpreter's own start is
left out (the same for both). Rounds alternate the order; the table shows medians. The goal
(issue 17) is holdfast's share at most 5 ms over Mangum's. ``python -X importtime`` and
``holdfast coldstart`` say where the time goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import summary

PROGRAMS = {
    "holdfast": "import holdfast\nholdfast.Adapter(app)",
    "mangum": "from mangum import Mangum\nMangum(app, lifespan='off')",
}
TIMED = """\
import time
start = time.perf_counter()
async def app(scope, receive, send):
    pass
{program}
print(time.perf_counter() - start)
"""
GOAL_MS = 5.0


def sample(program: str, env: dict[str, str]) -> float:
    """Seconds one fresh interpreter spends importing and constructing."""
    out = subprocess.run(
        [sys.executable, "-c", TIMED.format(program=program)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    summary.add_argument(parser)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in PROGRAMS}
    with tempfile.TemporaryDirectory() as cache:
        # Both sides from compiled bytecode (a Lambda package ships it), written on the first,
        # unmeasured, sample: the environment may forbid writing it beside the sources.
        env = {**os.environ, "PYTHONPYCACHEPREFIX": cache}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for program in PROGRAMS.values():
            sample(program, env)
        for round_no in range(args.rounds):
            order = list(PROGRAMS) if round_no % 2 == 0 else list(reversed(PROGRAMS))
            for name in order:
                times[name].append(sample(PROGRAMS[name], env))
    ours, theirs = (statistics.median(times[name]) * 1e3 for name in PROGRAMS)
    print(f"import + construct, a raw ASGI app, no framework: medians of {args.rounds} rounds")
    print(f"holdfast.Adapter(app)          {ours:7.1f} ms")
    print(f"Mangum(app, lifespan='off')    {theirs:7.1f} ms")
    print(
        f"holdfast's own share over Mangum's: {ours - theirs:+.1f} ms (goal <= +{GOAL_MS:.0f} ms)"
    )
    summary.write(
        args.summary,
        [
            summary.row(
                "import + construct, no framework (holdfast - Mangum)",
                f"{ours:.1f} ms",
                f"Mangum {theirs:.1f} ms",
                ours - theirs,
                GOAL_MS,
                unit="ms",
                rounds=[(a - b) * 1e3 for a, b in zip(*times.values(), strict=True)],
            )
        ],
    )


if __name__ == "__main__":
    main()
