"""What the tests that run an app under the emulator's real freeze on both hosts share: the two
host commands, emulators started with a record file the app writes to, a timed GET through the
emulator's front, the record read back, and a bounded wait."""

from __future__ import annotations

import http.client
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from holdfast.emulator import ThreadedEmulator


def host_commands(module: str) -> dict[str, list[str]]:
    """Unmodified awslambdaric with ``module.handler`` (``holdfast.Adapter(app)``) and
    ``holdfast run module:app``."""
    return {
        "awslambdaric": [sys.executable, "-m", "awslambdaric", f"{module}.handler"],
        "holdfast-run": [sys.executable, "-m", "holdfast", "run", f"{module}:app"],
    }


@contextmanager
def emulators(
    command: list[str], cwd: Path, folder: Path, env: dict[str, str] | None = None
) -> Iterator[Callable[..., tuple[ThreadedEmulator, Path]]]:
    """``start(**options)`` runs ``command`` under a new emulator (timeout 30 s unless given),
    with ``HOLDFAST_TEST_RECORD`` naming the record file it returns; all closed at the end."""
    record = folder / "record.txt"
    record.touch()
    started: list[ThreadedEmulator] = []

    def start(**options: object) -> tuple[ThreadedEmulator, Path]:
        options.setdefault("timeout", 30)
        variables = {"HOLDFAST_TEST_RECORD": str(record), **(env or {})}
        emulator = ThreadedEmulator(command, cwd=str(cwd), env=variables, **options)  # type: ignore[arg-type]
        emulator.start()
        started.append(emulator)
        return emulator, record

    try:
        yield start
    finally:
        for emulator in started:
            emulator.close()


def get(url: str, path: str) -> tuple[int, bytes, float]:
    """GET ``path`` through the emulator's front: status, body, and when the answer was in."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read(), time.monotonic()
    finally:
        connection.close()


def records(record: Path) -> dict[tuple[str, str], float]:
    """The record file as ``{(kind, request id): time.monotonic()}``."""
    rows = (line.split() for line in record.read_text().splitlines())
    return {(kind, request_id): float(at) for kind, request_id, at in rows}


def wait_for(predicate: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit  # only stops a broken test from hanging
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)
