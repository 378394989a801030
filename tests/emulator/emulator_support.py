"""Helpers for the emulator tests: runtimes as commands, emulators in a background thread."""

import sys
import time
from collections.abc import Callable
from pathlib import Path

from holdfast.emulator import ThreadedEmulator

HERE = Path(__file__).parent


def ric(handler: str) -> list[str]:
    """AWS's own runtime interface client, unmodified, running `handlers.<handler>`."""
    return [
        sys.executable,
        "-m",
        "awslambdaric",
        handler if "." in handler else f"handlers.{handler}",
    ]


def mini(handler: str) -> list[str]:
    """The tests' minimal custom runtime (it can stream), running `handlers.<handler>`."""
    return [sys.executable, str(HERE / "mini_runtime.py"), f"handlers.{handler}"]


def wait_until(predicate: Callable[[], object], what: str, limit: float = 60.0) -> None:
    """Poll `predicate` until it holds; the limit only stops a broken test from hanging."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


class Emulators:
    """Starts `ThreadedEmulator`s for a test and closes them after it; keeps their log lines."""

    def __init__(self) -> None:
        self.started: list[ThreadedEmulator] = []
        self.lines: list[str] = []

    def __call__(self, command: list[str], **options) -> ThreadedEmulator:
        options.setdefault("cwd", str(HERE))
        options.setdefault("log", self.lines.append)
        options.setdefault("timeout", 20)
        emulator = ThreadedEmulator(command, **options)
        emulator.start()
        self.started.append(emulator)
        return emulator

    def close(self) -> None:
        for emulator in self.started:
            emulator.close()
