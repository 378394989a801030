"""End to end: `holdfast run` as the runtime of the holdfast emulator, which freezes it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from holdfast.emulator import ThreadedEmulator
from lambda_events import http_event

pytestmark = pytest.mark.timeout(60)

HERE = Path(__file__).parent


def holdfast_run(spec: str) -> list[str]:
    return [sys.executable, "-m", "holdfast", "run", spec]


def emulator(spec: str, **options) -> ThreadedEmulator:
    return ThreadedEmulator(holdfast_run(spec), cwd=str(HERE), log=lambda line: None, **options)


def test_an_app_answers_through_the_emulator():
    with emulator("runtime_apps:app") as emu:
        first = emu.invoke(http_event("/hello"))
        second = emu.invoke(http_event("/hello"))
        emu.wait_idle()
        records = emu.freeze_log
    assert first.ok and json.loads(first.json()["body"]) == {"message": "hello"}
    assert second.ok
    assert [r.cold for r in records] == [True, False]
    assert all(r.outcome == "frozen" for r in records)


def test_the_caller_is_answered_before_background_work_and_the_freeze_waits_for_it(tmp_path):
    with emulator("runtime_apps:app", env={"GATE_DIR": str(tmp_path)}) as emu:
        result = emu.invoke(http_event("/gated-background"))
        # Answered, while the background task still waits for the gate: not frozen yet.
        assert result.ok
        assert not (tmp_path / "done").exists()
        assert emu.freeze_log[-1].frozen_at is None
        (tmp_path / "open").touch()
        emu.wait_idle()
        record = emu.freeze_log[-1]
    assert (tmp_path / "done").read_text() == "background finished"
    assert record.outcome == "frozen"
    assert record.response_sent_at < record.frozen_at


@pytest.mark.parametrize("streaming", [False, True], ids=["buffered", "streamed"])
def test_work_that_blocks_before_it_awaits_still_finishes_before_the_next_next(tmp_path, streaming):
    """The response goes out first; the work then holds the loop before its first await,
    waits on a timer and a thread, and only then does the runtime ask for the next event
    (waiting for it in its socket): the freeze comes after the work, never before."""
    mode = {"invoke_mode": "response_stream"} if streaming else {}
    env = {"GATE_DIR": str(tmp_path)}
    if streaming:
        env["HOLDFAST_INVOKE_MODE"] = "response_stream"
    with emulator("runtime_apps:app", env=env, **mode) as emu:
        first = httpx.get(f"{emu.url}/blocking-background", timeout=30)
        # Answered while the work blocks the runtime's loop: no /next yet, so no freeze.
        assert first.json() == {"ok": True}
        assert emu.freeze_log[-1].frozen_at is None
        (tmp_path / "open").touch()
        emu.wait_idle()
        record = emu.freeze_log[-1]
        assert (tmp_path / "done").read_text() == "background finished"
        assert (tmp_path / "thread").read_text() == "from a thread"
        assert record.outcome == "frozen"
        assert record.response_sent_at < record.frozen_at
        # The runtime serves on.
        second = httpx.get(f"{emu.url}/hello", timeout=30)
        emu.wait_idle()
    assert second.json() == {"message": "hello"}
    assert emu.freeze_log[-1].outcome == "frozen"


def test_a_non_http_event_is_a_function_error():
    sqs = json.loads((HERE.parent / "fixtures" / "events" / "sqs-receive-message.json").read_text())
    with emulator("runtime_apps:app") as emu:
        result = emu.invoke(sqs)
        after = emu.invoke(http_event("/hello"))
    assert result.function_error == "Unhandled"
    assert result.error_type == "InvalidEvent"
    assert after.ok


def test_an_init_failure_reaches_the_caller():
    with emulator("runtime_apps:nothing_here") as emu:
        result = emu.invoke(http_event("/hello"))
    assert not result.ok
    assert result.error_type == "Runtime.HandlerNotFound"


def test_the_emulator_sends_sigterm_and_lifespan_shutdown_runs(tmp_path):
    # Lambda sends SIGTERM only to runtimes with an extension: holdfast run registers one.
    with emulator("runtime_apps:app", env={"GATE_DIR": str(tmp_path)}) as emu:
        assert emu.invoke(http_event("/hello")).ok
    assert (tmp_path / "shutdown").read_text() == "lifespan shutdown ran"


def test_a_plain_handler():
    with emulator("runtime_apps.handler") as emu:
        result = emu.invoke({"k": 1})
    assert result.json()["echo"] == {"k": 1}
    assert result.json()["request_id"] == result.request_id


def test_streaming_through_the_http_front():
    with emulator(
        "runtime_apps:app",
        invoke_mode="response_stream",
        env={"HOLDFAST_INVOKE_MODE": "response_stream"},
    ) as emu:
        response = httpx.get(f"{emu.url}/stream", timeout=30)
        failed = httpx.get(f"{emu.url}/hello", timeout=30)
    assert response.status_code == 200
    assert response.headers["x-kind"] == "stream"
    assert response.text == "one two three"
    assert "session=abc" in response.headers["set-cookie"]
    assert failed.json() == {"message": "hello"}
