"""Helpers for the emulator tests: runtimes as commands, emulators in a background thread."""

import http.client
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


def reporter(address_file: Path) -> list[str]:
    """A "runtime" that only writes its AWS_LAMBDA_RUNTIME_API to `address_file` and sleeps: the
    test plays the runtime itself."""
    script = (
        "import os, sys, time;"
        "open(sys.argv[1], 'w').write(os.environ['AWS_LAMBDA_RUNTIME_API']);"
        "time.sleep(600)"
    )
    return [sys.executable, "-c", script, str(address_file)]


def call(
    address: str, method: str, path: str, body: bytes | str | None = None, headers=None
) -> tuple[int, dict[str, str], bytes]:
    """One request to the emulator's Runtime / Extensions / Telemetry API, on a new connection."""
    connection = http.client.HTTPConnection(address)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), payload


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
