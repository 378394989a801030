"""Helpers for the emulator tests: runtimes as commands, emulators in a background thread."""

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
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


class EmulateCommand:
    """`holdfast emulate ARGS` as a user runs it: a real process whose output (stdout and
    stderr, in the order written) is collected line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path = HERE, env: dict[str, str] | None = None):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "holdfast", "emulate", "--port", "0", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._ended = False  # the output is read to its end
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, limit: float = 60.0) -> re.Match[str]:
        """The first line matching `pattern`, once written; fails if the process ends first."""

        def found() -> re.Match[str] | None:
            return next(filter(None, (re.search(pattern, line) for line in self.lines)), None)

        with self._changed:
            self._changed.wait_for(lambda: found() or self._ended, limit)
            match = found()
        assert match, f"no {pattern!r} in:\n{self.output}"
        return match

    def wait_exit(self, limit: float = 60.0) -> int:
        """The exit status, once the process has ended and its output is read."""
        status = self.process.wait(limit)
        with self._changed:
            self._changed.wait_for(lambda: self._ended, limit)
        return status

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> int:
        """SIGTERM (as Ctrl-C would), then the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.wait_exit()
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
