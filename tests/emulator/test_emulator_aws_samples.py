"""Extensions in the layout and with the API use of AWS's own Python samples, run unmodified as
external extensions (or, the wrapper, as `AWS_LAMBDA_EXEC_WRAPPER`), behave as on Lambda."""

import http.server
import json
import socket
import sys
import threading

import pytest
from emulator_support import HERE, ric

LAYOUT = HERE / "aws_layout"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def collector():
    """The observability backend a Telemetry sample forwards batches to (`DISPATCH_POST_URI`)."""
    batches = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            batches.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.batches = batches
    server.url = f"http://127.0.0.1:{server.server_address[1]}/"
    yield server
    server.shutdown()
    server.server_close()


def test_basic_extension_gets_each_invoke_then_shutdown(emulators, tmp_path):
    log = tmp_path / "ext.log"
    emu = emulators(
        ric("echo"),
        concurrency=1,
        extensions=[[sys.executable, str(LAYOUT / "basic_extension" / "extension.py")]],
        env={"EXT_LOG": str(log)},
    )
    first, second = emu.invoke({"n": 1}), emu.invoke({"n": 2})
    emu.wait_idle(60)
    assert [r.outcome for r in emu.freeze_log] == ["frozen", "frozen"]
    emu.close()

    # Where `sandbox.localdomain` does not resolve, the user is told how to make it.
    try:
        socket.getaddrinfo("sandbox.localdomain", None)
        resolvable = True
    except OSError:
        resolvable = False
    hinted = any("sandbox.localdomain does not resolve" in line for line in emulators.lines)
    assert hinted is not resolvable

    entries = read_log(log)
    # It registered under its directory's name, not the file's, and still counts as external.
    assert entries[0] == {"registered": "basic_extension"}
    invokes = [e for e in entries if e.get("eventType") == "INVOKE"]
    assert [e["requestId"] for e in invokes] == [first.request_id, second.request_id]
    shutdown = [e for e in entries if e.get("eventType") == "SHUTDOWN"]
    assert len(shutdown) == 1 and shutdown[0]["shutdownReason"] == "spindown"
    assert entries[-1] == shutdown[0], "it exited on SHUTDOWN, not on a signal"


def test_telemetry_extension_gets_shutdown_with_its_telemetry_delivered(
    emulators, tmp_path, collector
):
    log = tmp_path / "ext.log"
    emu = emulators(
        ric("shout"),
        concurrency=1,
        extensions=[[sys.executable, str(LAYOUT / "telemetry_api_extension" / "extension.py")]],
        env={
            "EXT_LOG": str(log),
            "AWS_SAM_LOCAL": "true",  # the listener subscribes as http://0.0.0.0:PORT
            "LISTENER_PORT": str(free_port()),
            "DISPATCH_POST_URI": collector.url,
            "DISPATCH_MIN_BATCH_SIZE": "1000",
        },
    )
    results = [emu.invoke({"lines": 2}) for _ in range(3)]
    emu.wait_idle(60)
    emu.close()

    # SHUTDOWN came inside the window, and the sample forwarded everything before exiting.
    assert read_log(log) == [{"shutdown": "spindown"}, {"forwarded": True}]
    events = [event for batch in collector.batches for event in batch]
    reports = [e["record"]["requestId"] for e in events if e["type"] == "platform.report"]
    assert reports == [r.request_id for r in results], "the last invocation's report too"
    lines = {e["record"] for e in events if e["type"] == "function"}
    assert {f"line {n} of {r.request_id}" for r in results for n in range(2)} <= lines
    subscribed = [e for e in events if e["type"] == "platform.telemetrySubscription"]
    assert subscribed[0]["record"]["name"] == "telemetry_api_extension"


def test_logs_api_extension_receives_its_logs(emulators, tmp_path):
    log = tmp_path / "ext.log"
    emu = emulators(
        ric("shout"),
        concurrency=1,
        extensions=[[str(LAYOUT / "logs_api_extension" / "logs_api_http_extension.py")]],
        env={"EXT_LOG": str(log), "AWS_SAM_LOCAL": "true", "LISTENER_PORT": str(free_port())},
    )
    result = emu.invoke({"lines": 2})
    assert result.ok
    emu.wait_idle(60)
    emu.close()

    events = [event for batch in read_log(log) for event in batch]
    kinds = [e["type"] for e in events]
    rid = result.request_id
    assert {f"line {n} of {rid}" for n in range(2)} <= {
        e["record"] for e in events if e["type"] == "function"
    }
    for kind in ("platform.start", "platform.end", "platform.report"):
        assert any(e["type"] == kind and e["record"]["requestId"] == rid for e in events), kind
    assert "platform.logsSubscription" in kinds
    # The Logs API's own set of platform events: none of the Telemetry API's init events.
    assert not {"platform.initStart", "platform.telemetrySubscription"} & set(kinds)


def test_exec_wrapper_script_starts_the_runtime(emulators):
    emu = emulators(
        ric("xoptions"),
        env={"AWS_LAMBDA_EXEC_WRAPPER": str(LAYOUT / "wrapper" / "wrapper_script")},
    )
    assert emu.invoke({}).json() == {"xoptions": ["importtime"]}
