"""`holdfast dev` as a user runs it: a real process, in a directory holding the app."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
HOLDFAST = str(Path(sys.executable).parent / "holdfast")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(url: str, method: str = "GET") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Dev:
    """A running `holdfast dev`: its output lines, its URL, and a way to stop it."""

    def __init__(self, process: subprocess.Popen[str], port: int, folder: Path) -> None:
        self.process = process
        self.port = port
        self.folder = folder
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 60, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.lines) < count:
            if self.process.poll() is not None:
                self._reader.join(5)
                if sum(text in line for line in self.lines) >= count:
                    return
                raise AssertionError(f"holdfast dev exited before {text!r}:\n{self.output}")
            assert time.monotonic() < deadline, f"never saw {text!r}:\n{self.output}"
            time.sleep(0.05)

    def get(self, path: str, method: str = "GET") -> tuple[int, bytes]:
        return request(self.url + path, method)

    def json(self, path: str, method: str = "GET") -> object:
        status, body = self.get(path, method)
        assert status < 400, (status, body)
        return json.loads(body)

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=timeout)
        self._reader.join(10)
        return code


def start_dev(folder: Path, *args: str, wait: bool = True, writes_bytecode: bool = False) -> Dev:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DEVAPP_QUEUE": f"sqlite:///{folder / 'queue.db'}",
        "HOLDFAST_DEMO_QUEUE": f"sqlite:///{folder / 'demo.db'}",
        "NO_COLOR": "1",
    }
    if writes_bytecode:  # as Python does unless told not to (this machine's shell tells it)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    process = subprocess.Popen(
        [HOLDFAST, "dev", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=folder,
        text=True,
    )
    dev = Dev(process, port, folder)
    if wait:
        dev.wait_for("listening on")
    return dev
