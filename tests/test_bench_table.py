"""`make bench`'s table says when a short run cannot tell whether a goal is met.

Pure functions of bench/summary.py and bench/run.py: no benchmark runs here.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench_modules():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("summary"), importlib.import_module("run")
    finally:
        sys.path.remove(str(BENCH))
        for name in ("summary", "run"):  # generic names: leave none behind for other tests
            sys.modules.pop(name, None)


def test_the_spread_is_the_middle_half_of_the_rounds(bench_modules):
    summary, _ = bench_modules
    row = summary.row("p", "h", "peer", 1.0, 1.3, higher_is_better=True, rounds=[1, 2, 3, 4, 5])
    assert row["spread"] == [2, 4]
    assert summary.row("p", "h", "peer", 1.0, None, rounds=[0.9])["spread"] == [0.9, 0.9]
    assert summary.row("p", "h", "peer", 1.0, None)["spread"] is None


@pytest.mark.parametrize(
    ("value", "goal", "rounds", "higher", "verdict"),
    [
        (0.8, 1.0, [0.7, 0.8, 0.9], False, "yes"),  # met in most rounds
        (1.2, 1.0, [1.1, 1.2, 1.3], False, "NO"),  # missed in most rounds
        (0.95, 1.0, [0.9, 0.95, 1.05, 1.1], False, "yes ~"),  # the run cannot tell
        (2.1, 2.0, [1.8, 2.1, 2.4], True, "yes ~"),
        (1.9, 2.0, [1.85, 1.9, 1.95], True, "NO"),
        (1.9, None, [1.8, 2.1], True, "-"),  # reported, no goal
    ],
)
def test_a_goal_inside_the_spread_is_marked(bench_modules, value, goal, rounds, higher, verdict):
    summary, run = bench_modules
    row = summary.row("p", "h", "peer", value, goal, higher_is_better=higher, rounds=rounds)
    assert run._verdict(row) == verdict


def test_the_table_prints_the_spread_and_explains_the_mark(bench_modules, capsys):
    summary, run = bench_modules
    rows = [
        summary.row("ratio", "h", "peer", 0.95, 1.0, rounds=[0.9, 0.95, 1.05, 1.1]),
        summary.row("gap", "h", "peer", 0.5, 0.3, unit="ms", rounds=[0.4, 0.5, 0.6]),
    ]
    run.print_table(rows, markdown=False)
    out = capsys.readouterr().out
    assert "0.94x .. 1.06x" in out and "+0.45 ms .. +0.55 ms" in out
    assert "yes ~" in out and "~ the goal lies within that middle half" in out
