"""Waiting on a condition with a deadline, instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T | None], what: str, limit: float = 30.0) -> T:
    """Poll `check` until it returns something truthy, and return that; fail after `limit` s."""
    deadline = time.monotonic() + limit
    pause = 0.01
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit}s: {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


async def eventually_async(check: Callable[[], T | None], what: str, limit: float = 30.0) -> T:
    """`eventually` for a coroutine: polls without blocking the event loop."""
    deadline = time.monotonic() + limit
    pause = 0.01
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit}s: {what}")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.1)
