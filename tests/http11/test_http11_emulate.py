"""`holdfast emulate` under a 1,024-descriptor limit, crowded by 1,100 half-sent requests: the
front keeps answering and writes no traceback (issue 19, item 4)."""

import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.timeout(120)

HANDLER = """
def handler(event, context):
    return {"statusCode": 200, "body": "ok"}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _limit_descriptors() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))


def _get(port: int) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_crowd_of_half_sent_requests_at_the_descriptor_limit(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= 2048, "the test needs 1,100+ descriptors"
    if soft != resource.RLIM_INFINITY and soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    (tmp_path / "handler.py").write_text(HANDLER)
    port = _free_port()
    log = tmp_path / "emulate.log"
    command = [sys.executable, "-m", "holdfast", "emulate", "--port", str(port), "--"]
    runtime = [sys.executable, "-m", "holdfast", "run", "handler.handler"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, *runtime],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_limit_descriptors,
            start_new_session=True,
        )
    crowd: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port) == (200, b"ok"):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        for _ in range(1100):
            connection = socket.create_connection(("127.0.0.1", port), timeout=30)
            connection.sendall(b"GET / HTTP/1.1\r\nX-Slow: ")
            crowd.append(connection)
        for _ in range(3):
            assert _get(port) == (200, b"ok")
    finally:
        for connection in crowd:
            connection.close()
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text()
    assert "Traceback" not in output
    assert "Too many open files" not in output
