"""`holdfast emulate` as a user runs it: a real process, stopped with SIGTERM."""

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from emulator_support import HERE

from holdfast.emulator.cli import main, parse_config
from holdfast.emulator.config import DEFAULT_CONCURRENCY


def test_emulate_command_end_to_end():
    command = [
        sys.executable,
        "-m",
        "holdfast",
        "emulate",
        "--port",
        "0",
        "--function-name",
        "cli-fn",
    ]
    command += ["--", sys.executable, "-m", "awslambdaric", "handlers.echo"]
    process = subprocess.Popen(
        command, cwd=HERE, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        url = None
        for line in process.stderr:
            if match := re.search(r"listening on (http://\S+)", line):
                url = match[1]
                break
        assert url, "the emulator never said where it listens"
        response = httpx.post(
            f"{url}/2015-03-31/functions/cli-fn/invocations", json={"x": 1}, timeout=60
        )
        assert response.status_code == 200
        body = response.json()
        assert body["event"] == {"x": 1} and body["function_name"] == "cli-fn"
        report = f"REPORT RequestId: {response.headers['x-amzn-requestid']}"
        assert any(line.startswith(report) for line in process.stdout), "no REPORT line"
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert not Path(f"/proc/{body['pid']}").exists(), "the runtime is gone with the emulator"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "0"])
    assert exit_info.value.code == 2
    assert "a runtime command is required after --" in capsys.readouterr().err


def test_bad_option_values_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--concurrency", "0", "--", "true"])
    assert "concurrency must be at least 1" in capsys.readouterr().err


def test_emulate_defaults_to_lambda_like_concurrency():
    config = parse_config(["--", "true"])
    assert (config.concurrency, config.throttle) == (DEFAULT_CONCURRENCY, True)
    assert parse_config(["--concurrency", "3", "--", "true"]).concurrency == 3
    # Managed Instances: one environment, which takes the concurrent invocations itself.
    assert parse_config(["--max-concurrency", "4", "--", "true"]).concurrency == 1
