"""Shutdown: SIGTERM and the documented windows, SHUTDOWN events for external extensions."""

import json
import sys
from pathlib import Path

import pytest
from emulator_support import HERE, mini


@pytest.fixture
def extension(tmp_path):
    """An external extension: an executable file (its name is the extension's name)."""
    wrapper = tmp_path / "test-extension"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "ext_process.py"}"\n')
    wrapper.chmod(0o755)
    return {
        "command": [str(wrapper)],
        "env": {"EXT_NAME": wrapper.name, "EXT_LOG": str(tmp_path / "ext.log")},
    }


def test_internal_extension_earns_the_runtime_a_sigterm(emulators, tmp_path):
    sigterm = tmp_path / "sigterm"
    env = {"MINI_EXTENSION": "1", "MINI_SIGTERM_FILE": str(sigterm)}
    emu = emulators(mini("echo"), env=env)
    assert emu.invoke({}).ok
    emu.wait_idle(60)
    assert emu.freeze_log[-1].frozen_at is not None
    emu.close()  # thaws the frozen group, SIGTERMs the runtime, SIGKILLs after 500 ms
    assert sigterm.read_text() == "SIGTERM"


def test_without_extensions_the_runtime_is_killed_at_once(emulators, tmp_path):
    sigterm = tmp_path / "sigterm"
    emu = emulators(mini("echo"), env={"MINI_SIGTERM_FILE": str(sigterm)})
    pid = emu.invoke({}).json()["pid"]
    emu.close()
    assert not sigterm.exists(), "no extension registered: SIGKILL, no SIGTERM"
    assert not Path(f"/proc/{pid}").exists()


def test_external_extension_gets_invoke_and_shutdown(emulators, tmp_path, extension):
    log, sigterm = tmp_path / "ext.log", tmp_path / "sigterm"
    env = {**extension["env"], "MINI_SIGTERM_FILE": str(sigterm)}
    emu = emulators(mini("echo"), extensions=[extension["command"]], env=env)
    result = emu.invoke({})
    emu.wait_idle(60)
    emu.close()
    invoke, shutdown = (json.loads(line) for line in log.read_text().splitlines())
    assert invoke["eventType"] == "INVOKE" and invoke["requestId"] == result.request_id
    assert shutdown["eventType"] == "SHUTDOWN" and shutdown["shutdownReason"] == "spindown"
    assert shutdown["deadlineMs"] > invoke["deadlineMs"] - 60_000
    assert sigterm.read_text() == "SIGTERM"


def test_timeout_reset_sends_shutdown_timeout(emulators, tmp_path, extension):
    log = tmp_path / "ext.log"
    emu = emulators(
        mini("sleep"), extensions=[extension["command"]], env=extension["env"], timeout=1
    )
    result = emu.invoke({"seconds": 60})
    assert result.error_type == "Sandbox.Timedout"
    emu.wait_idle(60)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["INVOKE", "SHUTDOWN"]
    assert events[1]["shutdownReason"] == "timeout"
