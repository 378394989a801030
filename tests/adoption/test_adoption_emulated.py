"""Tasks a request starts finish before the freeze; a library's long-lived tasks do not hold it.

Under the emulator's real SIGSTOP freeze, on both hosts: unmodified awslambdaric with
`handler = holdfast.Adapter(app)`, and `holdfast run`.
"""

import json
import threading
from pathlib import Path

import pytest
from websockets.sync.server import serve

from freeze_support import emulators, host_commands, records
from freeze_support import get as get_bytes
from holdfast.emulator import ThreadedEmulator

HERE = Path(__file__).parent
HOSTS = host_commands("adopt_apps")


@pytest.fixture(scope="module")
def echo_server():
    """A websocket echo server on 127.0.0.1 (in this process: never frozen)."""

    def echo(connection):
        for message in connection:
            connection.send(message)

    with serve(echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.socket.getsockname()[:2]
        yield f"ws://{host}:{port}"
        server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(params=sorted(HOSTS))
def start(request, tmp_path, echo_server):
    env = {"HOLDFAST_TEST_WS": echo_server}
    with emulators(HOSTS[request.param], HERE, tmp_path, env) as start:
        yield start


def get(url: str, path: str) -> tuple[int, dict, float]:
    status, body, answered_at = get_bytes(url, path)
    return status, json.loads(body), answered_at


def freeze_of(emulator: ThreadedEmulator, request_id: str):
    return next(entry for entry in emulator.freeze_log if entry.request_id == request_id)


@pytest.mark.parametrize(
    ("path", "kinds"),
    [
        ("/fire?ms=300", ["job"]),
        ("/executor?ms=300", ["blocking", "executor-job"]),
        ("/nested?ms=300", ["outer", "job"]),
    ],
)
def test_tasks_the_request_starts_finish_before_the_freeze(start, path, kinds):
    emulator, record = start()
    answers = [get(emulator.url, path) for _ in range(3)]
    emulator.wait_idle(timeout=60)

    finished = records(record)
    for status, body, answered_at in answers:
        assert status == 200
        freeze = freeze_of(emulator, body["request_id"])
        assert freeze.outcome == "frozen", freeze
        for kind in kinds:
            # Finished inside its invocation ...
            assert finished[(kind, body["request_id"])] < freeze.frozen_at, kind
        # ... and the 300 ms job after the caller had the answer: the response did not wait.
        assert answered_at < finished[(kinds[-1], body["request_id"])]


def test_a_library_task_started_during_a_request_does_not_hold_the_freeze(start, capfd):
    # websockets starts its keep-alive task inside the first request; it lives as long as the
    # connection. Adopted, it would hold each invocation to its deadline (30 s here) and be
    # cancelled there; left alone, the environment freezes as soon as the response is out.
    emulator, _ = start(timeout=60)
    first = get(emulator.url, "/library")
    emulator.wait_idle(timeout=20)  # far less than the 60 s an adopted keep-alive would hold
    second = get(emulator.url, "/library")
    emulator.wait_idle(timeout=20)

    for status, body, _ in (first, second):
        assert status == 200
        assert body["echoed"] == body["request_id"]
        # The library's task was running at the response, and survives from one invocation
        # to the next: the same connection answered the second request.
        assert body["keepalive_running"] is True
        assert freeze_of(emulator, body["request_id"]).outcome == "frozen"
    output = capfd.readouterr()
    assert "keepalive" not in output.out + output.err


def test_a_detached_task_outlives_its_request_without_holding_it(start, capfd):
    emulator, record = start(timeout=60)
    first = get(emulator.url, "/detached")
    emulator.wait_idle(timeout=20)
    second = get(emulator.url, "/detached")
    emulator.wait_idle(timeout=20)

    assert records(record).keys() == {("listener-started", first[1]["request_id"])}
    for status, body, _ in (first, second):
        assert (status, body["listener_running"]) == (200, True)
        assert freeze_of(emulator, body["request_id"]).outcome == "frozen"
    output = capfd.readouterr()
    assert "_listen_forever" not in output.out + output.err


def test_an_adopted_task_past_the_deadline_is_cancelled_and_named(start, capfd):
    emulator, record = start(timeout=3)
    status, body, _ = get(emulator.url, "/forever")
    emulator.wait_idle(timeout=30)

    assert status == 200
    request_id = body["request_id"]
    assert ("listener-started", request_id) in records(record)
    # The drain stopped before the deadline: no timeout, the environment froze normally ...
    assert freeze_of(emulator, request_id).outcome == "frozen"
    # ... and the log names the task, where the app started it, and how to opt out.
    lines = (lambda out: out.out + out.err)(capfd.readouterr()).splitlines()
    reported = [line for line in lines if request_id in line and "_listen_forever" in line]
    assert reported, lines
    assert "cancelled" in reported[0]
    assert "adopt_apps.py:" in reported[0]
    assert "holdfast.detach" in reported[0]


def test_a_thread_the_request_starts_is_named_in_the_log_not_waited_for(start, capfd):
    emulator, record = start()
    status, body, _ = get(emulator.url, "/thread?ms=5000")
    emulator.wait_idle(timeout=30)

    request_id = body["request_id"]
    assert status == 200
    assert freeze_of(emulator, request_id).outcome == "frozen"
    assert ("blocking", request_id) not in records(record)  # frozen mid-work: not waited for
    output = capfd.readouterr()
    named = [line for line in (output.out + output.err).splitlines() if "'app-thread'" in line]
    assert named and request_id in named[0], named
    assert "adopt_apps.py:" in named[0] and "after_response" in named[0]
