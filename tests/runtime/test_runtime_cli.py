"""`holdfast run` as a process: init errors and exit statuses, environment settings, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import syscalls
from runtime_fake import ThreadedFake

from holdfast import config
from holdfast.runtime import cli
from lambda_events import http_event

pytestmark = pytest.mark.timeout(60)

HERE = Path(__file__).parent


def start(fake: ThreadedFake, *args: str, **env: str) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("HOLDFAST_", "AWS_"))}
    environ.update(AWS_LAMBDA_RUNTIME_API=fake.api.address, **env)
    return subprocess.Popen(
        [sys.executable, "-m", "holdfast", "run", *args],
        cwd=HERE,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str]:
    output, _ = process.communicate(timeout=30)
    return process.returncode, output


def test_serves_an_app_and_shuts_its_lifespan_down_on_sigterm(tmp_path):
    with ThreadedFake() as fake:
        process = start(fake, "runtime_apps:app", GATE_DIR=str(tmp_path))
        try:
            request_id = fake.call(fake.api.add_event, http_event("/hello"))
            result = fake.call(fake.api.wait_result, request_id)
            fake.call(fake.api.wait_for, lambda: fake.api.nexts() == 2)
        finally:
            process.send_signal(signal.SIGTERM)
        status, output = finish(process)
    assert json.loads(result.json()["body"]) == {"message": "hello"}
    assert status == 0, output
    assert (tmp_path / "shutdown").read_text() == "lifespan shutdown ran"


def test_a_runtime_waits_for_next_in_its_socket_and_sigterm_ends_the_wait(tmp_path):
    """Idle between events, the runtime's one thread sits in ``poll`` on the Runtime API socket
    (not in a turn of its event loop), and SIGTERM still ends it through the one shutdown path:
    the wait ends, lifespan shutdown runs, the process exits 0."""
    poll = syscalls.poll_number()
    with ThreadedFake() as fake:
        process = start(fake, "runtime_apps:app", GATE_DIR=str(tmp_path))
        try:
            request_id = fake.call(fake.api.add_event, http_event("/hello"))
            fake.call(fake.api.wait_result, request_id)
            fake.call(fake.api.wait_for, lambda: fake.api.nexts() == 2)
            waiting_in = syscalls.until(
                lambda: syscalls.current(process.pid), lambda number: number == poll
            )
            threads = len(os.listdir(f"/proc/{process.pid}/task"))
        finally:
            process.send_signal(signal.SIGTERM)
        status, output = finish(process)
    assert waiting_in == poll
    assert threads == 1  # SIGTERM is taken by the loop's thread: no thread for a freeze to stop
    assert status == 0, output
    assert (tmp_path / "shutdown").read_text() == "lifespan shutdown ran"


def test_an_app_s_own_sigterm_handler_is_named_and_chaining_keeps_the_shutdown(tmp_path):
    """holdfast run takes SIGTERM in the main thread's handler: an app that sets its own is
    warned that holdfast's shutdown now depends on it; one that calls the handler it replaced
    keeps lifespan shutdown and the clean exit."""
    (tmp_path / "own_handler_app.py").write_text(
        "import os, pathlib, signal\n"
        "from runtime_apps import app\n"
        "_replaced = signal.getsignal(signal.SIGTERM)\n"
        "def _own(signum, frame):\n"
        "    pathlib.Path(os.environ['GATE_DIR'], 'own').write_text('own handler ran')\n"
        "    _replaced(signum, frame)\n"
        "signal.signal(signal.SIGTERM, _own)\n"
    )
    with ThreadedFake() as fake:
        process = start(
            fake, "own_handler_app:app", GATE_DIR=str(tmp_path), PYTHONPATH=str(tmp_path)
        )
        try:
            request_id = fake.call(fake.api.add_event, http_event("/hello"))
            fake.call(fake.api.wait_result, request_id)
            fake.call(fake.api.wait_for, lambda: fake.api.nexts() == 2)
        finally:
            process.send_signal(signal.SIGTERM)
        status, output = finish(process)
    assert "the app set its own SIGTERM handler" in output
    assert status == 0, output
    assert (tmp_path / "own").read_text() == "own handler ran"
    assert (tmp_path / "shutdown").read_text() == "lifespan shutdown ran"


def test_sigterm_during_a_slow_import_ends_the_runtime_with_status_0(tmp_path):
    """The watch is set before the app's import: a SIGTERM while the import blocks (here in a
    C-level sleep) ends the process cleanly, not by the signal's default action."""
    (tmp_path / "slow_import_app.py").write_text(
        "import pathlib, time\n"
        f"pathlib.Path({str(tmp_path / 'importing')!r}).touch()\n"
        "time.sleep(60)\n"
        "async def app(scope, receive, send):\n"
        "    pass\n"
    )
    with ThreadedFake() as fake:
        process = start(fake, "slow_import_app:app", PYTHONPATH=str(tmp_path))
        try:
            syscalls.until(lambda: (tmp_path / "importing").exists(), bool)
        finally:
            process.send_signal(signal.SIGTERM)
        status, output = finish(process)
    assert status == 0, output
    assert fake.api.nexts() == 0


@pytest.mark.parametrize(
    ("spec", "error_type", "message"),
    [
        ("runtime_apps:nothing_here", "Runtime.HandlerNotFound", "missing on module"),
        ("rt_missing_module:app", "Runtime.ImportModuleError", "No module named"),
        ("runtime_apps:failing_startup", "LifespanError", "database unreachable"),
    ],
)
def test_init_failures_are_posted_and_exit_non_zero(spec, error_type, message):
    with ThreadedFake() as fake:
        status, output = finish(start(fake, spec))
        (init_error,) = fake.api.find("POST", "/init/error")
    assert status == 1
    body = init_error.json()
    assert body["errorType"] == error_type
    assert message in body["errorMessage"]
    assert init_error.headers["lambda-runtime-function-error-type"].startswith("Runtime.")
    assert fake.api.nexts() == 0
    assert error_type in output  # logged too


def test_handler_from_the_environment_and_concurrency():
    with ThreadedFake() as fake:
        process = start(fake, _HANDLER="runtime_apps.handler", AWS_LAMBDA_MAX_CONCURRENCY="2")
        try:
            fake.call(fake.api.wait_for, lambda: fake.api.nexts() == 2)
            request_id = fake.call(fake.api.add_event, {"k": "v"})
            result = fake.call(fake.api.wait_result, request_id)
        finally:
            process.send_signal(signal.SIGTERM)
        status, _ = finish(process)
        connections = {r.connection for r in fake.api.find("GET", "/invocation/next")}
    assert result.json()["echo"] == {"k": "v"}
    assert len(connections) == 2
    assert status == 0


@pytest.mark.parametrize(
    "env",
    [{"HOLDFAST_INVOKE_MODE": "response_stream"}, {"AWS_LWA_INVOKE_MODE": "RESPONSE_STREAM"}],
)
def test_invoke_mode_from_the_environment_streams(env):
    with ThreadedFake() as fake:
        process = start(fake, "runtime_apps:app", **env)
        try:
            request_id = fake.call(fake.api.add_event, http_event("/hello"))
            result = fake.call(fake.api.wait_result, request_id)
        finally:
            process.send_signal(signal.SIGTERM)
        finish(process)
    assert result.headers["lambda-runtime-function-response-mode"] == "streaming"
    prelude, _, body = result.body.partition(b"\x00" * 8)
    assert json.loads(prelude)["statusCode"] == 200
    assert json.loads(body) == {"message": "hello"}


def test_usage_errors(monkeypatch, capsys):
    monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API", raising=False)
    monkeypatch.delenv("_HANDLER", raising=False)
    assert cli.main(["app:app"]) == 2
    assert "AWS_LAMBDA_RUNTIME_API is not set" in capsys.readouterr().err
    assert cli.main([]) == 2
    assert cli.main(["a:b", "c:d"]) == 2
    assert cli.main(["--help"]) == 0
    assert "usage: holdfast run MODULE:ATTR" in capsys.readouterr().out


def test_settings_parsing():
    assert config.max_concurrency({}) == 1
    assert config.max_concurrency({"AWS_LAMBDA_MAX_CONCURRENCY": "8"}) == 8
    assert config.max_concurrency({"AWS_LAMBDA_MAX_CONCURRENCY": "zero"}) == 1
    assert config.max_concurrency({"AWS_LAMBDA_MAX_CONCURRENCY": "-3"}) == 1
    # The invoke mode is holdfast.config's (tests/lwa/test_lwa_config.py).
