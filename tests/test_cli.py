"""The `holdfast` command: `python -m holdfast` behaves exactly like it; `holdfast dev` serves."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

HOLDFAST = str(Path(sys.executable).parent / "holdfast")


@pytest.mark.parametrize(
    "args", [["--help"], [], ["nonsense"], ["run"], ["emulate", "--help"], ["--version"]]
)
def test_python_dash_m_behaves_exactly_like_the_command(args):
    by_script = subprocess.run([HOLDFAST, *args], capture_output=True, text=True, timeout=60)
    by_module = subprocess.run(
        [sys.executable, "-m", "holdfast", *args], capture_output=True, text=True, timeout=60
    )
    assert by_module.returncode == by_script.returncode
    assert by_module.stdout == by_script.stdout
    assert by_module.stderr.replace("__main__.py", "holdfast") == by_script.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(url: str, method: str = "GET", headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_holdfast_dev_serves_the_demo_on_a_local_lambda(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [HOLDFAST, "dev", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "HOLDFAST_DEMO_QUEUE": f"sqlite:///{tmp_path / 'demo.db'}",
        },
        cwd=tmp_path,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _request(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                assert time.monotonic() < deadline, "holdfast dev never answered"
                time.sleep(0.1)
        assert status == 200 and json.loads(body)["app"] == "holdfast demo"

        status, body = _request(f"http://127.0.0.1:{port}/work?ms=50", "POST")
        assert (status, json.loads(body)) == (202, {"accepted": True, "background_ms": 50})
        # The background work finished inside that invocation, so the next one sees it.
        status, body = _request(f"http://127.0.0.1:{port}/done")
        assert [entry.get("ms") for entry in json.loads(body)["finished"]] == [None, 50]

        # error_status_codes: the 503 is a function error, which the HTTP front answers 502.
        assert _request(f"http://127.0.0.1:{port}/fail")[0] == 502
        # REPORT comes at the freeze, after the answer: wait for the fourth before stopping.
        deadline = time.monotonic() + 60
        while sum("REPORT RequestId:" in line for line in lines) < 4:
            assert time.monotonic() < deadline, "the fourth REPORT line never came"
            time.sleep(0.05)

        # A long job: 202 + Location; the local worker runs it; status needs the token.
        request = urllib.request.Request(f"http://127.0.0.1:{port}/reports?pages=1", method="POST")
        with urllib.request.urlopen(request, timeout=30) as accepted:
            assert accepted.status == 202
            location = accepted.headers["location"]
        assert _request(location)[0] == 401
        deadline = time.monotonic() + 60
        while True:
            status, body = _request(location, headers={"Authorization": "Bearer demo"})
            if json.loads(body)["state"] == "succeeded":
                break
            assert time.monotonic() < deadline, f"the report never ran: {body!r}"
            time.sleep(0.1)
        assert json.loads(body)["result"]["pages"] == 1
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        reader.join(timeout=30)
    reports = [line for line in lines if "REPORT RequestId:" in line]
    assert "Error Type: Function.HTTPError" in reports[3]
