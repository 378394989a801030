"""Environments: created on demand up to the concurrency, reused warm; past the limit a request
waits, or (`throttle`, as `holdfast emulate` runs) is refused with 429 over HTTP, queued when
asynchronous, and still waited for by the Python API."""

import json
from urllib.parse import urlsplit

from emulator_support import call, ric, wait_until

from holdfast.emulator.config import DEFAULT_CONCURRENCY

INVOKE = "/2015-03-31/functions/function/invocations"


def test_concurrent_invocations_run_in_separate_environments(emulators, tmp_path):
    emu = emulators(ric("barrier"), concurrency=2)
    first, second = tmp_path / "first", tmp_path / "second"
    a = emu.submit(emu.emulator.invoke({"mine": str(first), "other": str(second)}))
    b = emu.submit(emu.emulator.invoke({"mine": str(second), "other": str(first)}))
    result_a, result_b = a.result(60).json(), b.result(60).json()
    # Each saw the other's file while it was itself still running: the two overlapped.
    assert result_a["met"] and result_b["met"]
    assert result_a["pid"] != result_b["pid"]
    emu.wait_idle(60)
    assert sorted(record.environment_id for record in emu.freeze_log) == [1, 2]
    assert len(emu.environments) == 2


def test_past_the_limit_a_request_is_throttled_as_lambda_does(emulators, tmp_path):
    emu = emulators(ric("gate"), concurrency=2, throttle=True)
    address = urlsplit(emu.url).netloc
    gate = tmp_path / "gate"
    started = [tmp_path / name for name in ("a", "b", "queued")]

    def event(marker):
        return json.dumps({"started": str(marker), "gate": str(gate)})

    # Two requests find every environment busy in turn: each gets one of its own.
    a = emu.submit(emu.emulator.invoke(json.loads(event(started[0]))))
    b = emu.submit(emu.emulator.invoke(json.loads(event(started[1]))))
    wait_until(lambda: started[0].exists() and started[1].exists(), "two environments running")

    # A third, synchronous, is refused at once with the Invoke API's throttle.
    status, headers, body = call(address, "POST", INVOKE, event(tmp_path / "refused"))
    assert status == 429
    assert headers["X-Amzn-ErrorType"] == "TooManyRequestsException"
    assert json.loads(body) == {
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        "Type": "User",
        "message": "Rate Exceeded.",
    }
    # Through the HTTP front too (as a function URL answers), and nothing ran for either.
    front = call(address, "GET", "/anything")
    assert front[0] == 429 and json.loads(front[2]) == {"Message": "Rate Exceeded."}
    assert not (tmp_path / "refused").exists()

    # An asynchronous one is queued, as Lambda queues events, and runs once one is free.
    queued = call(address, "POST", INVOKE, event(started[2]), {"X-Amz-Invocation-Type": "Event"})
    assert queued[0] == 202
    gate.touch()
    assert a.result(60).json()["pid"] != b.result(60).json()["pid"]
    wait_until(started[2].exists, "the queued async invocation ran")
    emu.wait_idle(60)
    assert len(emu.environments) == 2
    assert len(emu.freeze_log) == 3


def test_the_python_api_waits_for_a_busy_environment(emulators, tmp_path):
    emu = emulators(ric("gate"), concurrency=1)
    gate = tmp_path / "gate"
    started_a, started_b = tmp_path / "a", tmp_path / "b"
    a = emu.submit(emu.emulator.invoke({"started": str(started_a), "gate": str(gate)}))
    b = emu.submit(emu.emulator.invoke({"started": str(started_b), "gate": str(gate)}))
    wait_until(started_a.exists, "the first invocation started")
    assert not started_b.exists(), "the second request must wait for the only environment"
    gate.touch()
    assert a.result(60).json()["pid"] == b.result(60).json()["pid"], "one warm environment reused"
    emu.wait_idle(60)
    first, second = emu.freeze_log
    assert first.frozen_at <= second.thawed_at
    assert len(emu.environments) == 1


def test_back_to_back_requests_do_not_wait_for_after_response_work(emulators, tmp_path):
    """`holdfast emulate`'s default: a request arriving while the last one's after-response work
    still runs gets another environment, as on Lambda, instead of waiting for it."""
    # `holdfast emulate`'s settings.
    emu = emulators(ric("gate"), concurrency=DEFAULT_CONCURRENCY, throttle=True)
    address = urlsplit(emu.url).netloc
    gate = tmp_path / "gate"
    first = emu.submit(emu.emulator.invoke({"started": str(tmp_path / "a"), "gate": str(gate)}))
    wait_until((tmp_path / "a").exists, "the first invocation is running")
    body = json.dumps({"started": str(tmp_path / "b"), "gate": str(tmp_path / "open")})
    (tmp_path / "open").touch()
    status, _, payload = call(address, "POST", INVOKE, body)
    assert status == 200 and json.loads(payload)["pid"] != 0
    assert not first.done(), "answered while the first environment was still busy"
    gate.touch()
    first.result(60)
    emu.wait_idle(60)
    assert len(emu.environments) == 2
