"""The emulator's own speed: sequential requests per second through `holdfast emulate`.

    .venv/bin/python bench/emulator.py [--requests N] [--cycles N]

One HTTP client sends ``GET /`` after ``GET /`` on one kept-alive connection to the front of
``holdfast emulate`` (v2 events, the real freeze between invocations), whose runtime is

* **raw runtime** (bench/emulator_apps/raw_runtime.py): one socket, ``/next``, post a constant
  answer — the cheapest runtime there is, so the figure is the emulator's front + Runtime API
  (+ freeze and thaw). Target (issue 17): >= 3,000 req/s, so that the front is never what a
  runtime benchmark measures;
* **holdfast run** with a trivial handler (bench/emulator_apps/trivial.py), for scale: what a
  real runtime adds.

The client is as cheap as the runtime: a socket that sends the request and reads the answer
by its ``Content-Length`` (``--client raw``, the default). Python's ``http.client`` costs about
as much per request as the emulator's whole front does (``--client http.client`` measures with
it, as this benchmark did before 2026-12-07: its figures are comparable with those only).

Setups alternate over ``--cycles`` (2 shared cores); the figure is the median cycle's rate.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import summary

APPS = Path(__file__).resolve().parent / "emulator_apps"
PYTHON = sys.executable
WARMUP = 200

RUNTIMES = {
    "raw runtime": [PYTHON, "raw_runtime.py"],
    "holdfast run (trivial handler)": [PYTHON, "-m", "holdfast", "run", "trivial.handler"],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RawClient:
    """One kept-alive connection speaking just enough HTTP/1.1 for ``GET /`` and its answer."""

    REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def get(self) -> tuple[int, bytes]:
        """(status, body) of ``GET /``."""
        self._sock.sendall(self.REQUEST)
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._receive()
        head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self._buffer) < length:
            self._receive()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return int(head[9:12]), body

    def _receive(self) -> None:
        data = self._sock.recv(65536)
        if not data:
            raise ConnectionError("the emulator closed the connection")
        self._buffer += data

    def close(self) -> None:
        self._sock.close()


class HTTPClient:
    """The same through ``http.client`` (``--client http.client``)."""

    def __init__(self, port: int) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self) -> tuple[int, bytes]:
        self._connection.request("GET", "/")
        response = self._connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self._connection.close()


CLIENTS: dict[str, type[RawClient] | type[HTTPClient]] = {
    "raw": RawClient,
    "http.client": HTTPClient,
}


class Setup:
    def __init__(
        self, name: str, runtime: list[str], client: type[RawClient] | type[HTTPClient]
    ) -> None:
        self.name = name
        self.port = _free_port()
        command = [PYTHON, "-m", "holdfast", "emulate", "--port", str(self.port), "--"]
        self.process = subprocess.Popen(
            [*command, *runtime],
            cwd=APPS,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.rates: list[float] = []
        self.client = self._connect(client)
        for _ in range(WARMUP):
            self.request()

    def _connect(self, client: type[RawClient] | type[HTTPClient]) -> RawClient | HTTPClient:
        deadline = time.monotonic() + 60
        while True:
            try:
                connected = client(self.port)
                if connected.get() == (200, b"ok"):
                    return connected
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{self.name}: the emulator did not answer")
            time.sleep(0.1)

    def request(self) -> None:
        status, body = self.client.get()
        if body != b"ok" or status != 200:
            raise RuntimeError(f"{self.name}: answered {status}")

    def run(self, requests: int) -> None:
        started = time.perf_counter()
        for _ in range(requests):
            self.request()
        self.rates.append(requests / (time.perf_counter() - started))

    def close(self) -> None:
        self.client.close()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per setup per cycle")
    parser.add_argument("--cycles", type=int, default=3, help="passes over the setups")
    parser.add_argument(
        "--client", choices=sorted(CLIENTS), default="raw", help="the HTTP client (see above)"
    )
    summary.add_argument(parser)
    args = parser.parse_args()
    setups: list[Setup] = []
    try:
        for name, runtime in RUNTIMES.items():
            print(f"starting {name} ...", file=sys.stderr)
            setups.append(Setup(name, runtime, CLIENTS[args.client]))
        for cycle in range(args.cycles):
            for setup in setups if cycle % 2 == 0 else setups[::-1]:
                setup.run(args.requests)
            print(f"cycle {cycle + 1}/{args.cycles} done", file=sys.stderr)
    finally:
        for setup in setups:
            setup.close()
    print(
        "sequential GET / through the holdfast emulate front (v2 events, the real"
        f" freeze);\n{args.cycles} x {args.requests} requests per setup, one kept-alive client"
        f" connection ({args.client})\n"
    )
    for setup in setups:
        rate = statistics.median(setup.rates)
        spread = ", ".join(f"{r:,.0f}" for r in setup.rates)
        print(f"{setup.name:<34}{rate:>10,.0f} req/s   ({1e3 / rate:.3f} ms each; cycles {spread})")
    print("\ntarget (issue 17): raw runtime >= 3,000 req/s")
    summary.write(args.summary, [_row(setup) for setup in setups])


def _row(setup: Setup) -> dict[str, object]:
    rate = statistics.median(setup.rates)
    return summary.row(
        f"emulator front + Runtime API, {setup.name}",
        f"{rate:,.0f} req/s",
        "-",
        rate,
        3000 if setup.name == "raw runtime" else None,
        higher_is_better=True,
        unit="req/s",
        rounds=setup.rates,
    )


if __name__ == "__main__":
    main()
