"""Waiting on a condition with a deadline, instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def _pauses(what: str, limit: float) -> Iterator[float]:
    """Growing pauses between two looks, until `limit` seconds are over: then a failure."""
    deadline, pause = time.monotonic() + limit, 0.01
    while time.monotonic() <= deadline:
        yield pause
        pause = min(pause * 2, 0.1)
    raise AssertionError(f"not within {limit}s: {what}")


def eventually(check: Callable[[], T | None], what: str, limit: float = 30.0) -> T:
    """Poll `check` until it returns something truthy, and return that; fail after `limit` s."""
    for pause in _pauses(what, limit):
        if value := check():
            return value
        time.sleep(pause)
    raise AssertionError("unreachable")  # _pauses raises first


async def eventually_async(check: Callable[[], T | None], what: str, limit: float = 30.0) -> T:
    """`eventually` for a coroutine: polls without blocking the event loop."""
    for pause in _pauses(what, limit):
        if value := check():
            return value
        await asyncio.sleep(pause)
    raise AssertionError("unreachable")
