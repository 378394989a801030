"""Lambda's 2025-2026 semantics end to end, through the emulator: a result posted after its
invocation timed out is answered 410 Gone, dropped and logged, and the runtime carries on; the
tenant id reaches the handler; AWS_LAMBDA_LOG_FORMAT=JSON lines carry each invocation's ids."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from holdfast.emulator import ThreadedEmulator

pytestmark = pytest.mark.timeout(60)

HERE = Path(__file__).parent
HOLDFAST_RUN = [sys.executable, "-m", "holdfast", "run", "host_apps:sleeper"]
JSON_LOGS = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def wait_for_output(capfd, text: str, limit: float = 20.0) -> str:
    """What the runtime printed, once it printed `text` (the limit only stops a hang)."""
    output = ""
    deadline = time.monotonic() + limit
    while text not in output:
        if time.monotonic() > deadline:
            raise AssertionError(f"never printed {text!r}: {output}")
        time.sleep(0.05)
        output += capfd.readouterr().out
    return output


def test_a_late_result_is_gone_and_the_runtime_carries_on(capfd):
    # Managed Instances: a timed-out invocation keeps running, so its result does come late.
    with ThreadedEmulator(
        HOLDFAST_RUN,
        cwd=str(HERE),
        timeout=1,
        max_concurrency=2,
        log=lambda line: None,
        env=JSON_LOGS,
    ) as emu:
        late = emu.invoke({"sleep": 1.5})
        fresh = emu.invoke({"sleep": 0}, tenant_id="tenant-9")
        output = wait_for_output(capfd, "timed out before its result")
        later = emu.invoke({"sleep": 0})
    output += capfd.readouterr().out
    assert late.error_type == "Sandbox.Timedout"
    assert fresh.ok and fresh.json() == {"tenant_id": "tenant-9", "request_id": fresh.request_id}
    assert later.ok and later.json()["request_id"] == later.request_id
    lines = json_lines(output)
    dropped = [line for line in lines if "timed out before its result" in line["message"]]
    assert [line["requestId"] for line in dropped] == [late.request_id]
    slept = {line["requestId"]: line for line in lines if line.get("logger") == "app"}
    assert slept[fresh.request_id]["tenantId"] == "tenant-9"
    assert slept[fresh.request_id]["level"] == "INFO"
    assert set(slept) == {late.request_id, fresh.request_id, later.request_id}
