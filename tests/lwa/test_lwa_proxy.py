"""`holdfast proxy -- uvicorn ...` under `holdfast emulate` (a local Lambda that really freezes).

The after-response guarantee: with holdfast's completion middleware, every 300 ms
BackgroundTasks task finishes before its invocation's freeze; without it none does, as under the
Lambda Web Adapter.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from holdfast.emulator import ThreadedEmulator
from holdfast.proxy import cli

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uvicorn(port: int, *server_options: str) -> list[str]:
    server = [sys.executable, "-m", "uvicorn", "proxy_apps:app", "--port", str(port)]
    return [*server, "--log-level", "warning", *server_options]


def proxy_command(port: int, server: list[str]) -> list[str]:
    return [sys.executable, "-m", "holdfast", "proxy", "--port", str(port), "--", *server]


@pytest.fixture
def start(tmp_path):
    record = tmp_path / "record.txt"
    record.touch()
    started = []

    def start(env=None, server_options=(), server=None, **options):
        """The proxy in an emulator, in front of ``server(port)`` (default: uvicorn serving
        proxy_apps, with ``server_options``)."""
        options.setdefault("timeout", 30)
        options.setdefault("log", lambda line: None)
        port = free_port()
        emulator = ThreadedEmulator(
            proxy_command(port, (server or uvicorn)(port, *server_options)),
            cwd=str(HERE),
            env={"HOLDFAST_TEST_RECORD": str(record), **(env or {})},
            **options,
        )
        emulator.start()
        started.append(emulator)
        return emulator, record

    yield start
    for emulator in started:
        emulator.close()


def get(url: str, path: str, method: str = "GET", body: bytes | None = None, headers=None):
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Return once ``condition()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    event = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what} after {timeout} s"
        event.wait(0.02)  # nothing signals a kernel socket state: check it again shortly


def established_connections(port: int) -> list[str]:
    """The server side of every ESTABLISHED TCP connection on local ``port`` (/proc/net)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                if int(local.rsplit(":", 1)[1], 16) == port and state == "01":
                    found.append(local)
    return found


def wait_for_line(process: subprocess.Popen[str], text: str, timeout: float) -> None:
    """Wait until ``process`` writes a line holding ``text`` to stderr (and keep draining it)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        assert line is not None, f"the process ended before writing {text!r}"
        if text in line:
            return


def records(record: Path) -> dict[tuple[str, str], float]:
    rows = (line.split() for line in record.read_text().splitlines())
    return {(kind, request_id): float(at) for kind, request_id, at in rows}


@pytest.mark.parametrize("middleware", [True, False], ids=["middleware", "no-middleware"])
def test_background_tasks_and_the_freeze(start, middleware):
    emulator, record = start(env={"HOLDFAST_TEST_MIDDLEWARE": "1" if middleware else "0"})
    request_ids = []
    for _ in range(4):
        status, _, body = get(emulator.url, "/task?ms=300")
        assert status == 200, body
        request_ids.append(json.loads(body)["request_id"])
        emulator.wait_idle(timeout=60)
    # No wait for stragglers: a task that finished before its freeze wrote its row before the
    # freeze was logged (wait_idle returned after it); one thawed later writes a later time,
    # which counts as after the freeze either way.
    finished = records(record)
    freezes = {entry.request_id: entry for entry in emulator.freeze_log}
    before = [
        request_id
        for request_id in request_ids
        if freezes[request_id].outcome == "frozen"
        and finished.get(("task", request_id), float("inf")) < freezes[request_id].frozen_at
    ]
    if middleware:
        assert before == request_ids
        for request_id in request_ids:  # holdfast.after_response works in the proxied app too
            assert finished[("after", request_id)] < freezes[request_id].frozen_at
    else:
        assert before == []


def test_no_connection_idle_through_a_pause_is_reused_across_a_freeze(start):
    # The environment freezes between invocations: a kept-alive connection to the app sits
    # through the freeze and may be reset by the server's keep-alive timer at thaw (LWA issue
    # #830). Only back-to-back invocations share one (idle for less than FREEZE_SAFE_IDLE, far
    # below any keep-alive timeout); after a pause each gets its own. The server's short
    # keep-alive (1 s) makes a connection reused after the pause fail if it ever were.
    emulator, _ = start(server_options=["--timeout-keep-alive", "1", "--no-proxy-headers"])
    ports = []
    for pause in (0, 1.5, 0, 1.5):
        time.sleep(pause)  # the pause is the scenario: an environment idle past the limit
        status, _, body = get(emulator.url, "/echo/x")
        assert status == 200, body
        ports.append(json.loads(body)["client_port"])
        emulator.wait_idle(timeout=60)
    assert len({ports[0], ports[1], ports[3]}) == 3, "a new connection after each pause"
    assert all(entry.outcome == "frozen" for entry in emulator.freeze_log)


def test_wsgi_work_after_the_response_finishes_before_the_freeze(start):
    emulator, record = start(server=lambda port: [sys.executable, "wsgi_server.py", str(port)])
    request_ids = []
    for _ in range(2):
        status, _, body = get(emulator.url, "/work")
        assert status == 200, body
        request_ids.append(json.loads(body)["request_id"])
        emulator.wait_idle(timeout=60)
    finished = records(record)
    freezes = {entry.request_id: entry for entry in emulator.freeze_log}
    for request_id in request_ids:
        assert finished[("task", request_id)] < freezes[request_id].frozen_at


def test_managed_instances_run_concurrent_pollers_on_pooled_connections(start):
    # One environment, four invocations at once, no freeze (AWS_LAMBDA_MAX_CONCURRENCY=4):
    # concurrent requests stay isolated, and connections to the app are reused.
    emulator, _ = start(server_options=["--no-proxy-headers"], max_concurrency=4)
    bodies = [f"request {index}".encode() * (index + 1) for index in range(16)]

    def post(body):
        status, _, data = get(emulator.url, "/echo/x", "POST", body)
        assert status == 200, data
        return json.loads(data)

    with ThreadPoolExecutor(4) as pool:
        documents = list(pool.map(post, bodies))
    assert [bytes.fromhex(document["body"]) for document in documents] == bodies
    assert len({document["client_port"] for document in documents}) < len(bodies)


def test_the_app_shuts_down_gracefully_with_the_environment(start):
    emulator, record = start()
    status, _, _ = get(emulator.url, "/echo/x")
    assert status == 200
    emulator.close()  # SIGTERM to the runtime (the proxy), which stops the app with SIGTERM
    assert ("shutdown", "-") in records(record)


def test_a_crashed_app_ends_its_environment_and_the_next_one_serves(start):
    emulator, _ = start()
    status, _, _ = get(emulator.url, "/die")
    assert status in (500, 502)  # the invocation failed: a runtime exit or the proxy's 502
    emulator.wait_idle(timeout=60)
    status, _, body = get(emulator.url, "/echo/x")
    assert status == 200, body
    emulator.wait_idle(timeout=60)
    outcomes = [entry.outcome for entry in emulator.freeze_log]
    assert outcomes[0] == "exit" and outcomes[-1] == "frozen"
    assert emulator.freeze_log[-1].cold  # a new environment, with a new app


def test_usage():
    assert cli._parse(["--port", "3000", "--", "server", "-x"]) == (3000, ["server", "-x"])
    assert cli._parse(["--port=3000", "--", "server"]) == (3000, ["server"])
    assert cli._parse(["--", "server"]) == (None, ["server"])
    for bad in (["--port", "http"], ["--bogus"], ["--port", "0", "--", "x"], ["server"]):
        with pytest.raises(SystemExit) as exited:  # one line and a hint (tests/test_first_steps)
            cli._parse(bad)
        assert exited.value.code == 2
    assert cli.main(["--help"]) == 0


def test_the_command_lines_of_the_docs(tmp_path):
    # `holdfast emulate -- holdfast proxy -- uvicorn ...`, as a user types it.
    front, app_port = free_port(), free_port()
    holdfast = [sys.executable, "-m", "holdfast"]
    server = [sys.executable, "-m", "uvicorn", "proxy_apps:app", "--port", str(app_port)]
    command = [
        *(*holdfast, "emulate", "--port", str(front), "--"),
        *(*holdfast, "proxy", "--port", str(app_port), "--", *server),
    ]
    env = {**os.environ, "HOLDFAST_TEST_RECORD": str(tmp_path / "record.txt")}
    process = subprocess.Popen(
        command, cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_line(process, "listening on", 60)
        status, _, body = get(f"http://127.0.0.1:{front}", "/echo/x")
        assert status == 200, body
        assert json.loads(body)["path"] == "/echo/x"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
