"""The proxy's parts against real sockets: the upstream HTTP client, the request target, the
readiness probe and the completion reports (ASGI and WSGI middleware, the listener)."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import quote
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from fastapi import BackgroundTasks, FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from holdfast import completion, config
from holdfast.proxy import readiness
from holdfast.proxy.app import _target
from holdfast.proxy.process import AppProcess
from holdfast.proxy.upstream import FREEZE_SAFE_IDLE, Upstream, UpstreamError


class Last(bytes):
    """An answer after which the server closes the connection, saying nothing of it."""


class RawServer:
    """A TCP server answering each request with canned bytes; counts connections.

    An answer ``None`` reads the request and closes the connection without answering; a
    ``Last`` answer is sent, then the connection closed (``closed`` is set once it is)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _serve(self, reader, writer):
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if answer is None:  # close without answering
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower() or isinstance(answer, Last):
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()
        await writer.wait_closed()
        self.closed.set()


async def fetch(upstream, method="GET", target="/", headers=(), body=b"", own=()):
    response = await upstream.request(method, target, list(headers), body, own=own)
    chunks = [chunk async for chunk in response.body()]
    return response.status, response.headers, b"".join(chunks)


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("exclusive", [False, True])
def test_content_length_chunked_and_read_to_close_bodies(exclusive):
    async def scenario():
        answers = [
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nx-trailer: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end",
        ]
        async with RawServer(answers) as server:
            upstream = Upstream(
                "127.0.0.1", server.port, reuse=True, idle_timeout=4, exclusive=exclusive
            )
            first = await fetch(upstream)
            second = await fetch(upstream)
            third = await fetch(upstream)
            return first, second, third, server.connections

    first, second, third, connections = run(scenario())
    assert (first[0], first[2]) == (200, b"hello")
    assert (second[0], second[2]) == (201, b"abcde")
    assert (third[0], third[2]) == (200, b"until the end")
    assert connections == 1  # reused while allowed


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_body_of_known_length_comes_whole_when_here_and_streams_when_not(exclusive):
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"

    async def scenario():
        first_out = asyncio.Event()

        async def serve(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(head + b"hello")
            await first_out.wait()  # the rest only once "hello" is through the proxy
            writer.write(b"world")
            await reader.readuntil(b"\r\n\r\n")
            writer.write(head + b"helloworld")  # the whole answer in one write
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upstream = Upstream("127.0.0.1", port, reuse=True, idle_timeout=4, exclusive=exclusive)
        answers = []
        for _ in range(2):
            response = await upstream.request("GET", "/", [], b"")
            pieces = []
            async for chunk in response.body():
                pieces.append(chunk)
                first_out.set()
            answers.append(pieces)
        server.close()
        return answers, len(upstream._idle)

    (streamed, whole), idle = run(scenario())
    assert streamed == [b"hello", b"world"]
    assert whole == [b"helloworld"]
    assert idle == 1  # each body read to its end: the connection kept both times


def test_where_it_can_freeze_only_back_to_back_requests_share_a_connection(monkeypatch):
    async def scenario():
        answers = [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"] * 3
        async with RawServer(answers) as server:
            upstream = Upstream("127.0.0.1", server.port, reuse=False, idle_timeout=4)
            now = time.time()
            monkeypatch.setattr(time, "time", lambda: now)  # however slow the machine
            await fetch(upstream)
            await fetch(upstream)  # at once: the same connection
            together = server.connections
            # Idle longer than a freeze may safely be: e.g. frozen between invocations.
            monkeypatch.setattr(time, "time", lambda: now + FREEZE_SAFE_IDLE + 0.01)
            await fetch(upstream)
            return together, server.connections

    assert run(scenario()) == (1, 2)


def test_a_pool_idle_timeout_of_zero_never_reuses():
    async def scenario():
        answers = [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"] * 2
        async with RawServer(answers) as server:
            upstream = Upstream("127.0.0.1", server.port, reuse=False, idle_timeout=0)
            await fetch(upstream)
            await fetch(upstream)
            return server.connections

    assert run(scenario()) == 2


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_kept_connection_the_app_closed_is_replaced_before_the_request_goes_out(exclusive):
    async def scenario():
        ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        async with RawServer([Last(ok), ok]) as server:
            upstream = Upstream(
                "127.0.0.1", server.port, reuse=True, idle_timeout=4, exclusive=exclusive
            )
            await fetch(upstream)
            await server.closed.wait()  # e.g. its keep-alive timeout, while it was idle
            status, _, body = await fetch(upstream, target="/second")
            return status, body, server.connections, server.requests

    status, body, connections, requests = run(scenario())
    assert (status, body, connections) == (200, b"ok", 2)
    assert [request.split(b" ")[1] for request in requests] == [b"/", b"/second"]


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_request_the_app_took_and_dropped_is_never_sent_again(exclusive):
    async def scenario():
        ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        async with RawServer([ok, None, ok]) as server:
            upstream = Upstream(
                "127.0.0.1", server.port, reuse=True, idle_timeout=4, exclusive=exclusive
            )
            await fetch(upstream)
            with pytest.raises(UpstreamError, match="closed the connection without answering"):
                await fetch(upstream, "POST", "/pay", body=b"once")
            return server.requests

    requests = run(scenario())
    # It may have been acted on: a retry could do it twice. The client gets a 502 instead.
    assert [request.split(b" ")[1] for request in requests] == [b"/", b"/pay"]


def test_idle_timeout_is_on_the_wall_clock(monkeypatch):
    async def scenario():
        answers = [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"] * 2
        async with RawServer(answers) as server:
            upstream = Upstream("127.0.0.1", server.port, reuse=True, idle_timeout=4)
            await fetch(upstream)
            now = time.time()
            monkeypatch.setattr(time, "time", lambda: now + 5)  # e.g. a long freeze
            await fetch(upstream)
            return server.connections

    assert run(scenario()) == 2


def test_interim_responses_are_skipped_and_heads_have_no_body():
    async def scenario():
        answers = [
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ]
        async with RawServer(answers) as server:
            upstream = Upstream("127.0.0.1", server.port, reuse=True, idle_timeout=4)
            return [
                await fetch(upstream, "POST", body=b"x"),
                await fetch(upstream, "HEAD"),
                await fetch(upstream),
            ]

    (post, head, empty) = run(scenario())
    assert (post[0], post[2]) == (200, b"ok")
    assert (head[0], head[2]) == (200, b"")
    assert (empty[0], empty[2]) == (204, b"")


def test_request_head_drops_hop_by_hop_and_injected_headers():
    async def scenario():
        async with RawServer([b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]) as server:
            upstream = Upstream("127.0.0.1", server.port, reuse=False, idle_timeout=4)
            headers = [
                (b"host", b"example.com"),
                (b"connection", b"upgrade"),
                (b"transfer-encoding", b"chunked"),
                (b"x-evil", b"a\r\nx-injected: 1"),
                (b"content-length", b"999"),
                (b"x-ok", b"1"),
            ]
            await fetch(upstream, "POST", "/p?q=1", headers, b"body")
            return server.requests[0]

    sent = run(scenario())
    head, _, body = sent.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /p?q=1 HTTP/1.1"
    assert sorted(lines[1:]) == [b"content-length: 4", b"host: example.com", b"x-ok: 1"]
    assert body == b"body"


@pytest.mark.parametrize("exclusive", [False, True])
def test_connection_refused_is_an_upstream_error(exclusive):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    upstream = Upstream("127.0.0.1", port, reuse=False, idle_timeout=4, exclusive=exclusive)
    with pytest.raises(UpstreamError, match="cannot connect"):
        run(fetch(upstream))


def test_each_address_of_the_host_is_tried_and_the_one_that_answers_is_kept_first():
    """``localhost`` may name ::1 before 127.0.0.1 while the app listens on the latter only."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = sock.getsockname()[1]

    async def scenario():
        ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        async with RawServer([ok, ok]) as server:
            upstream = Upstream("localhost", server.port, reuse=False, idle_timeout=0)
            listening = (socket.AF_INET, ("127.0.0.1", server.port))
            # As resolved, with an address nothing listens on first (what getaddrinfo gives
            # depends on the machine: set here so the test always meets the case).
            upstream._addresses = [(socket.AF_INET, ("127.0.0.1", refused)), listening]
            answers = [await fetch(upstream), await fetch(upstream)]
            return answers, upstream._addresses[0] == listening, server.connections

    answers, kept_first, connections = run(scenario())
    assert [(status, body) for status, _, body in answers] == [(200, b"ok"), (200, b"ok")]
    assert kept_first and connections == 2


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_request_body_larger_than_the_socket_buffers_goes_out_whole(exclusive):
    body = bytes(range(256)) * 16384  # 4 MiB: more than one send() takes

    async def scenario():
        async with RawServer([b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]) as server:
            upstream = Upstream(
                "127.0.0.1", server.port, reuse=False, idle_timeout=4, exclusive=exclusive
            )
            answer = await fetch(upstream, "POST", body=body)
            return answer, server.requests

    (status, _, answer), requests = run(scenario())
    assert (status, answer) == (200, b"ok")
    assert requests[0].partition(b"\r\n\r\n")[2] == body


def test_answers_that_come_while_the_proxy_waits_off_the_loop():
    """Exclusive mode waits for the answer in a blocking poll: a server on another thread
    answers meanwhile, its head and body in separate writes, three times on one connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)  # a deadline: a client that never comes fails the test, not hangs
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def serve():
        connection, _ = listener.accept()
        connection.settimeout(30)
        with connection:
            for number in range(3):
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(65536)
                seen.append(request.split(b" ")[1])
                body = b"answer %d" % number
                connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body))
                connection.sendall(body)

    server = threading.Thread(target=serve)
    server.start()

    async def scenario():
        upstream = Upstream("127.0.0.1", port, reuse=True, idle_timeout=4, exclusive=True)
        return [await fetch(upstream, target=f"/{n}") for n in range(3)]

    try:
        answers = run(scenario())
    finally:
        server.join()
        listener.close()
    assert [(status, body) for status, _, body in answers] == [
        (200, b"answer 0"),
        (200, b"answer 1"),
        (200, b"answer 2"),
    ]
    assert seen == [b"/0", b"/1", b"/2"]  # one connection (the server accepts only one)


@pytest.mark.parametrize(
    ("scope", "target"),
    [
        ({"path": "/a b", "raw_path": b"/a%20b", "query_string": b""}, "/a%20b"),
        ({"path": "/Año", "raw_path": "/Año".encode(), "query_string": b"x=1"}, "/A%C3%B1o?x=1"),
        (
            {"path": "/api/x", "raw_path": b"/api/x", "root_path": "/api", "query_string": b""},
            "/x",
        ),
        ({"path": "/api", "raw_path": b"/api", "root_path": "/api", "query_string": b""}, "/"),
    ],
)
def test_request_target(scope, target):
    assert _target(scope) == target


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=30).map(lambda raw: b"/" + raw), st.binary(max_size=8))
def test_request_target_is_the_raw_path_quoted(raw_path, query):
    # Plain paths are sent as they are: exactly what quoting them gives.
    raw = raw_path.decode("utf-8", "surrogateescape")
    quoted = quote(raw, safe="/:@!$&'()*+,;=-._~%", errors="surrogateescape")
    scope = {"path": "/ignored", "raw_path": raw_path, "query_string": query}
    assert _target(scope) == (f"{quoted}?{query.decode('latin-1')}" if query else quoted)


def test_request_id_header_cannot_be_spoofed_and_a_missing_host_is_the_apps_address():
    answer = b"HTTP/1.1 204 No Content\r\n\r\n"

    async def scenario():
        async with RawServer([answer, answer]) as server:
            upstream = Upstream("127.0.0.1", server.port, reuse=True, idle_timeout=4)
            own = [(b"holdfast-request-id", b"real-id")]
            forged = [(b"holdfast-request-id", b"forged"), (b"host", b"h")]
            await fetch(upstream, headers=forged, own=own)
            await fetch(upstream, headers=[(b"x-a", b"1")])
            return server.port, server.requests

    port, (spoofed, hostless) = run(scenario())
    assert spoofed.split(b"\r\n")[1:-2] == [b"host: h", b"holdfast-request-id: real-id"]
    assert hostless.split(b"\r\n")[1:-2] == [b"x-a: 1", b"host: 127.0.0.1:%d" % port]


# -- readiness --------------------------------------------------------------------------------
def test_readiness_probe_statuses():
    async def scenario(answer, **settings):
        async with RawServer([answer]) as server:
            probe = config.ProxySettings(readiness_port=server.port, **settings)
            return await readiness.check(probe)

    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    bad = b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n"
    forbidden = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"
    assert run(scenario(ok)) is True
    assert run(scenario(bad)) is False
    assert run(scenario(forbidden)) is True
    assert run(scenario(forbidden, healthy_status=frozenset(range(200, 400)))) is False
    assert run(scenario(bad, readiness_protocol="tcp")) is True


def test_readiness_fails_fast_when_nothing_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    probe = config.ProxySettings(readiness_port=port)
    assert run(readiness.check(probe)) is False
    with pytest.raises(readiness.NotReady, match="not ready after"):
        run(readiness.wait_ready(probe, 0.05))


# -- completion reports -----------------------------------------------------------------------
def test_listener_takes_early_reports_and_ignores_strangers():
    async def scenario():
        listener = completion.CompletionListener("secret")
        await listener.start()
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.sendto(b"secret early", listener.address)
        sender.sendto(b"wrong late", listener.address)
        await asyncio.sleep(0.05)
        await asyncio.wait_for(listener.wait("early"), 1)  # already reported
        waiting = asyncio.ensure_future(listener.wait("late"))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the forged report did not count
        sender.sendto(b"secret late", listener.address)
        await asyncio.wait_for(waiting, 1)
        sender.close()
        listener.close()

    run(scenario())


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:²", ":8000"])
def test_a_completion_address_that_is_not_host_port_reports_nowhere(monkeypatch, address):
    monkeypatch.setenv(completion.ADDRESS_VARIABLE, address)
    monkeypatch.setenv(completion.TOKEN_VARIABLE, "t0ken")
    assert completion._Reporter().address is None


@pytest.fixture
def proxy_environment(monkeypatch):
    """A listener standing in for the proxy, and its address in the environment."""
    received: list[bytes] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    host, port = sock.getsockname()
    monkeypatch.setenv(completion.ADDRESS_VARIABLE, f"{host}:{port}")
    monkeypatch.setenv(completion.TOKEN_VARIABLE, "t0ken")

    def receive():
        received.append(sock.recv(1024))
        return received[-1]

    yield receive
    sock.close()


def test_asgi_middleware_reports_after_background_work(proxy_environment):
    finished = []
    app = FastAPI()
    app.add_middleware(completion.CompletionMiddleware)

    async def later():
        await asyncio.sleep(0.05)
        finished.append("task")

    @app.get("/")
    async def index(tasks: BackgroundTasks):
        tasks.add_task(later)
        return {}

    with TestClient(app) as client:
        response = client.get("/", headers={"holdfast-request-id": "req-1"})
        assert response.status_code == 200
        assert response.headers["holdfast-completion"] == "1"
        assert proxy_environment() == b"t0ken req-1"
        assert finished == ["task"]
        plain = client.get("/")  # no request id: not from the proxy, nothing reported
        assert "holdfast-completion" not in plain.headers


def test_wsgi_middleware_reports_when_the_response_is_closed(proxy_environment):
    closed = []

    class Body(list):
        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [("content-type", "text/plain")])
        return Body([b"hello"])

    wrapped = completion.WSGICompletionMiddleware(app)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, wrapped, handler_class=Quiet)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
    connection.request("GET", "/", headers={"holdfast-request-id": "w-1"})
    response = connection.getresponse()
    assert response.getheader("holdfast-completion") == "1"
    assert response.read() == b"hello"
    assert proxy_environment() == b"t0ken w-1"
    assert closed == [True]
    thread.join()
    server.server_close()
    connection.close()


def test_middlewares_do_nothing_outside_proxy_mode(monkeypatch):
    monkeypatch.delenv(completion.ADDRESS_VARIABLE, raising=False)
    assert os.environ.get(completion.ADDRESS_VARIABLE) is None
    calls = []

    async def app(scope, receive, send):
        calls.append(scope)

    middleware = completion.CompletionMiddleware(app)
    scope = {"type": "http", "headers": [(b"holdfast-request-id", b"x")]}
    run(middleware(scope, None, None))
    assert calls == [scope]


# -- the app's process ------------------------------------------------------------------------
_STOP_UNDER_BLOCKED_SIGTERM = """
import asyncio, signal
from holdfast.proxy.process import AppProcess

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # as the runtime does

async def main():
    process = await AppProcess.start(["sleep", "30"], {"PATH": "/usr/bin:/bin"})
    await process.stop(5)
    print(process.returncode)

asyncio.run(main())
"""


def test_the_app_gets_sigterm_although_the_runtime_blocks_it():
    done = subprocess.run(
        [sys.executable, "-c", _STOP_UNDER_BLOCKED_SIGTERM],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == str(-signal.SIGTERM), done.stderr  # not SIGKILL after 5 s


def test_exit_status_and_start_failure():
    async def scenario():
        process = await AppProcess.start(["sh", "-c", "exit 7"], dict(os.environ))
        status = await asyncio.wait_for(process.exited, 10)
        with pytest.raises(RuntimeError, match="cannot start"):
            await AppProcess.start(["no-such-command-anywhere"], dict(os.environ))
        return status

    assert run(scenario()) == 7
