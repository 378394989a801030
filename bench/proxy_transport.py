"""What one request to the app's server costs over each loopback transport the proxy could use.

    .venv/bin/python bench/proxy_transport.py [--requests N] [--rounds N]

``holdfast proxy`` forwards each invocation to the app's own server. This measures the bare
transport against uvicorn serving a trivial ASGI app (``bench/proxy_apps/px_trivial.py``), one
request at a time, with no emulator and no adapter in the way:

* a fresh TCP connection per request vs a kept-alive one;
* a Unix socket (``uvicorn --uds``), fresh and kept alive;
* the client: asyncio streams (what the proxy used before), an asyncio ``Protocol`` with a
  pre-built request head, ``loop.sock_sendall`` / ``sock_recv`` on a raw socket, a blocking
  socket with a pre-built head, ``http.client``, and the proxy's own client
  (``holdfast.proxy.upstream``: sockets read on demand, the answer awaited in a blocking
  ``poll`` when one invocation runs at a time);
* ``TCP_NODELAY`` on or off (asyncio sets it on every TCP connection it opens);
* **after a thaw**: the server is stopped (SIGSTOP) and continued (SIGCONT) before each
  request, as Lambda thaws the environment just before the invocation arrives.

Each variant is timed per request (``perf_counter`` around send + whole response); variants
alternate within each round, the table shows medians over all requests, in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

from holdfast.proxy.upstream import FREEZE_SAFE_IDLE, Upstream

APPS = Path(__file__).resolve().parent / "proxy_apps"
# Kept-alive connections wait between rounds: longer than uvicorn's default 5 s keep-alive.
_QUIET_AND_KEPT = ["--log-level", "warning", "--timeout-keep-alive", "600"]
HEAD = b"GET /plain HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: bench\r\n\r\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """uvicorn serving the trivial app on a TCP port or a Unix socket."""

    def __init__(self, *, uds: str | None) -> None:
        self.uds = uds
        self.port = 0 if uds else _free_port()
        where = ["--uds", uds] if uds else ["--port", str(self.port)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "px_trivial:app", *where, *_QUIET_AND_KEPT],
            cwd=APPS,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.connect(nodelay=True).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def connect(self, *, nodelay: bool) -> socket.socket:
        if self.uds:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.uds)
            return sock
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if nodelay else 0)
        return sock

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)
        os.kill(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (the trivial app answers with Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head


class Blocking:
    """A blocking socket and a pre-built request head."""

    def __init__(self, server: Server, *, keep: bool, nodelay: bool = True) -> None:
        self.server, self.keep, self.nodelay = server, keep, nodelay
        self.sock: socket.socket | None = None

    def request(self) -> None:
        if self.sock is None:
            self.sock = self.server.connect(nodelay=self.nodelay)
        self.sock.sendall(HEAD)
        _read_response(self.sock)
        if not self.keep:
            self.sock.close()
            self.sock = None


class HttpClient:
    """``http.client.HTTPConnection`` (TCP only)."""

    def __init__(self, server: Server, *, keep: bool) -> None:
        self.server, self.keep = server, keep
        self.connection: http.client.HTTPConnection | None = None

    def request(self) -> None:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.server.port)
        self.connection.request("GET", "/plain", headers={"user-agent": "bench"})
        self.connection.getresponse().read()
        if not self.keep:
            self.connection.close()
            self.connection = None


class Streams:
    """asyncio streams (``open_connection`` / ``open_unix_connection``), as the proxy uses."""

    def __init__(self, server: Server, *, keep: bool) -> None:
        self.server, self.keep = server, keep
        self.pair: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self) -> None:
        if self.pair is None:
            if self.server.uds:
                self.pair = await asyncio.open_unix_connection(self.server.uds)
            else:
                self.pair = await asyncio.open_connection("127.0.0.1", self.server.port)
        reader, writer = self.pair
        writer.write(HEAD)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        if not self.keep:
            writer.close()
            self.pair = None


class _Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.done: asyncio.Future[bytes] | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, body = self.buffer.partition(b"\r\n\r\n")
        if sep and self.done is not None and not self.done.done():
            length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
            if len(body) >= length:
                self.buffer = b""
                self.done.set_result(head)


class Protocol:
    """An asyncio ``Protocol``: one write of a pre-built head, a future for the answer."""

    def __init__(self, server: Server, *, keep: bool) -> None:
        self.server, self.keep = server, keep
        self.link: tuple[asyncio.Transport, _Collect] | None = None

    async def request(self) -> None:
        loop = asyncio.get_running_loop()
        if self.link is None:
            if self.server.uds:
                self.link = await loop.create_unix_connection(_Collect, self.server.uds)  # type: ignore[assignment]
            else:
                self.link = await loop.create_connection(  # type: ignore[assignment]
                    _Collect, "127.0.0.1", self.server.port
                )
        assert self.link is not None
        transport, protocol = self.link
        protocol.done = loop.create_future()
        transport.write(HEAD)
        await protocol.done
        if not self.keep:
            transport.close()
            self.link = None


class Proxy:
    """holdfast proxy's own client (``holdfast.proxy.upstream``), one invocation at a time."""

    def __init__(self, server: Server, *, keep: bool) -> None:
        idle = FREEZE_SAFE_IDLE if keep else 0.0
        self.upstream = Upstream(
            "127.0.0.1", server.port, reuse=False, idle_timeout=idle, exclusive=True
        )

    async def request(self) -> None:
        headers = [(b"host", b"127.0.0.1"), (b"user-agent", b"bench")]
        response = await self.upstream.request("GET", "/plain", headers, b"")
        async for _ in response.body():
            pass


class LoopSocket:
    """A raw non-blocking socket driven by ``loop.sock_sendall`` / ``loop.sock_recv``."""

    def __init__(self, server: Server, *, keep: bool) -> None:
        self.server, self.keep = server, keep
        self.sock: socket.socket | None = None

    async def request(self) -> None:
        loop = asyncio.get_running_loop()
        if self.sock is None:
            self.sock = self.server.connect(nodelay=True)
            self.sock.setblocking(False)
        sock = self.sock
        await loop.sock_sendall(sock, HEAD)
        data = b""
        while True:
            data += await loop.sock_recv(sock, 65536)
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
                if len(body) >= length:
                    break
        if not self.keep:
            sock.close()
            self.sock = None


def variants(tcp: Server, uds: Server) -> list[tuple[str, Server, object]]:
    return [
        ("TCP, fresh, asyncio streams (the proxy before)", tcp, Streams(tcp, keep=False)),
        ("TCP, kept, asyncio streams (the proxy before)", tcp, Streams(tcp, keep=True)),
        ("TCP, fresh, holdfast proxy's upstream", tcp, Proxy(tcp, keep=False)),
        ("TCP, kept, holdfast proxy's upstream", tcp, Proxy(tcp, keep=True)),
        ("TCP, fresh, asyncio Protocol", tcp, Protocol(tcp, keep=False)),
        ("TCP, kept, asyncio Protocol", tcp, Protocol(tcp, keep=True)),
        ("TCP, kept, loop.sock_sendall/sock_recv", tcp, LoopSocket(tcp, keep=True)),
        ("TCP, fresh, blocking socket, NODELAY", tcp, Blocking(tcp, keep=False)),
        ("TCP, kept, blocking socket, NODELAY", tcp, Blocking(tcp, keep=True)),
        ("TCP, kept, blocking socket, no NODELAY", tcp, Blocking(tcp, keep=True, nodelay=False)),
        ("TCP, fresh, http.client", tcp, HttpClient(tcp, keep=False)),
        ("TCP, kept, http.client", tcp, HttpClient(tcp, keep=True)),
        ("Unix, fresh, asyncio streams", uds, Streams(uds, keep=False)),
        ("Unix, kept, asyncio streams", uds, Streams(uds, keep=True)),
        ("Unix, kept, asyncio Protocol", uds, Protocol(uds, keep=True)),
        ("Unix, kept, blocking socket", uds, Blocking(uds, keep=True)),
    ]


async def _time(client: object, server: Server, thaw: bool) -> float:
    if thaw:
        server.thaw()
    request = client.request  # type: ignore[attr-defined]
    started = time.perf_counter()
    result = request()
    if isinstance(result, Awaitable):
        await result
    return time.perf_counter() - started


async def bench(requests: int, rounds: int) -> dict[tuple[str, bool], list[float]]:
    with tempfile.TemporaryDirectory(prefix="holdfast-transport-") as tmp:
        tcp, uds = Server(uds=None), Server(uds=os.path.join(tmp, "app.sock"))
        try:
            chosen = variants(tcp, uds)
            times: dict[tuple[str, bool], list[float]] = {}
            for _, server, client in chosen:  # warm up every path
                for _ in range(20):
                    await _time(client, server, False)
            for round_no in range(rounds):
                order = chosen if round_no % 2 == 0 else chosen[::-1]
                for thaw in (False, True):
                    for name, server, client in order:
                        samples = times.setdefault((name, thaw), [])
                        for _ in range(requests):
                            samples.append(await _time(client, server, thaw))
                print(f"round {round_no + 1}/{rounds} done", file=sys.stderr)
            return times
        finally:
            tcp.close()
            uds.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times = asyncio.run(bench(args.requests, args.rounds))
    names = list(dict.fromkeys(name for name, _ in times))
    print(
        f"One GET to uvicorn (h11, trivial ASGI app) per request, {args.rounds} x {args.requests}"
        " requests per variant; medians in microseconds\n"
    )
    header = f"{'transport and client':<52}{'warm':>8}{'after thaw':>12}"
    print(header)
    print("-" * len(header))
    for name in names:
        warm = statistics.median(times[(name, False)]) * 1e6
        thawed = statistics.median(times[(name, True)]) * 1e6
        print(f"{name:<52}{warm:>8.0f}{thawed:>12.0f}")


if __name__ == "__main__":
    main()
