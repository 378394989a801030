"""AWS's own runtime interface client, unmodified, against the emulator."""

import json
import re
import time

from emulator_support import ric


def test_echo_cold_then_warm(emulators):
    emu = emulators(ric("echo"), function_name="echo-fn", memory=256, timeout=7)
    first = emu.invoke({"n": 1}, client_context={"custom": {"k": "v"}})
    second = emu.invoke({"n": 2})
    emu.wait_idle()

    assert first.ok and second.ok
    body = first.json()
    assert body["event"] == {"n": 1}
    assert body["request_id"] == first.request_id
    assert body["function_name"] == "echo-fn"
    assert body["memory_limit_in_mb"] == "256"
    assert body["invoked_function_arn"] == "arn:aws:lambda:us-east-1:000000000000:function:echo-fn"
    assert 0 < body["remaining_ms"] <= 7000
    assert body["client_context"] == {"k": "v"}
    assert re.fullmatch(
        r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=1", body["trace_id"]
    )
    assert body["region"] == "us-east-1"
    # The runtime leads its own process group, so a freeze reaches everything it starts.
    assert body["pgid"] == body["pid"]
    assert second.json()["pid"] == body["pid"], "the second invocation reuses the warm runtime"

    cold, warm = emu.freeze_log
    assert (cold.cold, warm.cold) == (True, False)
    for record in (cold, warm):
        assert record.outcome == "frozen"
        assert record.started_at <= record.response_sent_at <= record.frozen_at
    assert cold.frozen_at <= warm.thawed_at <= warm.started_at


def test_report_lines(emulators):
    emu = emulators(ric("echo"), memory=256)
    first = emu.invoke({})
    second = emu.invoke({})
    emu.wait_idle()

    lines = emulators.lines
    for result in (first, second):
        rid = result.request_id
        start = lines.index(f"START RequestId: {rid} Version: $LATEST")
        end = lines.index(f"END RequestId: {rid}")
        assert lines[end + 1].startswith(f"REPORT RequestId: {rid}\t")
        assert start < end
    cold_report = lines[lines.index(f"END RequestId: {first.request_id}") + 1]
    warm_report = lines[lines.index(f"END RequestId: {second.request_id}") + 1]
    fields = dict(field.split(": ", 1) for field in cold_report.split("\t")[1:])
    assert set(fields) >= {
        "Duration",
        "Billed Duration",
        "Memory Size",
        "Max Memory Used",
        "Init Duration",
        "Post-Response Duration",
    }
    assert fields["Memory Size"] == "256 MB"
    assert int(fields["Max Memory Used"].split()[0]) > 0
    assert "Init Duration" not in warm_report
    report = emu.reports[0]
    assert report.billed_ms >= report.duration_ms + report.init_duration_ms


def test_function_error(emulators):
    emu = emulators(ric("fail"))
    result = emu.invoke({})
    assert result.function_error == "Unhandled"
    assert result.error_type == "ValueError"
    assert result.json()["errorMessage"] == "boom"
    emu.wait_idle()
    assert emu.freeze_log[-1].outcome == "frozen", "a function error does not reset the environment"


def test_init_error(emulators):
    emu = emulators(ric("broken.handler"))
    result = emu.invoke({})
    assert result.function_error == "Unhandled"
    assert result.error_type == "RuntimeError"
    assert "cannot initialize" in result.json()["errorMessage"]


def test_large_payloads_round_trip(emulators):
    # Big bodies make libcurl send `Expect: 100-continue`; the event goes out with one too.
    emu = emulators(ric("big"))
    result = emu.invoke({"size": 5 * 1024 * 1024})
    assert result.ok and len(result.json()) == 5 * 1024 * 1024
    too_big = emu.invoke({"size": 6 * 1024 * 1024 + 200})
    assert too_big.function_error == "Unhandled"
    assert too_big.error_type == "Function.ResponseSizeTooLarge"


def test_runtime_exit_error_then_recovery(emulators):
    emu = emulators(ric("crash"))
    result = emu.invoke({"code": 3})
    assert result.function_error == "Unhandled"
    message = f"RequestId: {result.request_id} Error: Runtime exited with error: exit status 3"
    assert result.json() == {"errorType": "Runtime.ExitError", "errorMessage": message}
    emu.wait_idle()
    assert emu.freeze_log[-1].outcome == "exit"


def test_timeout_resets_and_next_invocation_is_cold(emulators):
    emu = emulators(ric("sleep"), timeout=1)
    slow = emu.invoke({"seconds": 30})
    assert slow.function_error == "Unhandled"
    assert slow.json() == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {slow.request_id} Error: Task timed out after 1.00 seconds",
    }
    fast = emu.invoke({"seconds": 0})
    assert fast.ok
    emu.wait_idle()
    timed_out, after = emu.freeze_log
    assert timed_out.outcome == "timeout" and timed_out.frozen_at is None
    assert after.cold, "the environment was reset: the next invocation cold-starts"
    assert emu.reports[0].status == "timeout"
    assert emu.reports[1].init_duration_ms is not None


def test_init_timeout_is_retried_within_the_invocation(emulators, tmp_path):
    marker = tmp_path / "slow-once"
    env = {"SLOW_INIT_MARKER": str(marker), "SLOW_INIT_SECONDS": "60"}
    # The first init must reach the module's import before the limit: 3 s leaves room for the
    # interpreter and awslambdaric to start on a loaded machine (0.5 s once did not).
    emu = emulators(ric("slow_init.handler"), init_timeout=3, timeout=20, env=env)
    result = emu.invoke({})
    assert marker.exists(), "the first init ran (and was cut short)"
    assert result.ok and result.json() == "initialized"
    assert any(line.startswith("INIT_REPORT") and "timeout" in line for line in emulators.lines)


def test_freeze_waits_for_the_internal_extension(emulators, tmp_path):
    emu = emulators(ric("with_extension.handler"), env={"EXT_DIR": str(tmp_path)})
    result = emu.invoke({"x": 1})
    assert result.ok, "the caller is answered while the extension still works"
    record = emu.freeze_log[-1]
    assert record.frozen_at is None, "not frozen: the extension has not called next"

    (tmp_path / f"go-{result.request_id}").touch()
    emu.wait_idle()
    done_at = float((tmp_path / f"done-{result.request_id}").read_text())
    assert record.response_sent_at < done_at < record.frozen_at
    assert "Post-Response Duration" in emulators.lines[-1]

    event = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[0])
    assert event["eventType"] == "INVOKE"
    assert event["requestId"] == result.request_id
    assert event["invokedFunctionArn"].endswith(":function:function")
    assert event["tracing"]["type"] == "X-Amzn-Trace-Id"
    assert event["deadlineMs"] > time.time() * 1000
    assert "payload" not in event
