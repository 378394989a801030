"""The machine-readable rows a bench script writes with ``--summary PATH`` (``bench/run.py``,
what ``make bench`` runs, collects them into one table).

One row per comparison of issue 17: what was measured (``path``), holdfast's figure and the
peer's (as text, with their unit), the ``ratio`` (or the figure itself, for a goal that is not a
ratio), the ``goal`` as text and whether it was ``met``, and the ``spread``: the middle half
(first to third quartile) of the same figure taken round by round (each round measures both
sides back to back), so a reader can tell a goal missed by the run's noise from one missed in
most rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--summary", metavar="PATH", help="also write the result rows as JSON (for bench/run.py)"
    )


def row(
    path: str,
    holdfast: str,
    peer: str,
    value: float,
    goal: float | None,
    *,
    higher_is_better: bool = False,
    unit: str = "x",
    rounds: list[float] | None = None,
) -> dict[str, Any]:
    """One comparison; ``value`` (a ratio holdfast / peer unless ``unit`` says otherwise) is
    checked against ``goal`` (``None``: reported, with no goal). ``rounds``: the figure of
    each round, whose middle half is the row's spread."""
    if goal is None:
        goal_text, met = "(reported)", None
    else:
        goal_text = f"{'>=' if higher_is_better else '<='} {_figure(goal, unit)}"
        met = value >= goal if higher_is_better else value <= goal
    spread = None
    if rounds:
        low, _, high = statistics.quantiles(
            rounds * 2 if len(rounds) == 1 else rounds, n=4, method="inclusive"
        )
        spread = [low, high]
    return {
        "path": path,
        "holdfast": holdfast,
        "peer": peer,
        "ratio": value,
        "unit": unit,
        "goal": goal_text,
        "goal_value": goal,
        "met": met,
        "spread": spread,
    }


def ratios(ours: list[float], theirs: list[float]) -> list[float]:
    """Each round's ratio of the two sides' figures (measured back to back in that round)."""
    return [a / b for a, b in zip(ours, theirs, strict=True)]


def write(path: str | None, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` to the JSON list at ``path`` (nothing when no path was given)."""
    if not path:
        return
    file = Path(path)
    existing = json.loads(file.read_text()) if file.exists() and file.stat().st_size else []
    file.write_text(json.dumps([*existing, *rows], indent=1))


def _figure(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
