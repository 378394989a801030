"""`--max-concurrency N`: one environment, N invocations at once, no freeze (Managed Instances).

Run against unmodified awslambdaric, which forks one worker per slot when it sees
AWS_LAMBDA_MAX_CONCURRENCY, and against a runtime played by hand for the protocol details
(invocation ids, 410 Gone for a result posted after its invocation timed out).
"""

import concurrent.futures
import http.client
import json
import uuid

from emulator_support import mini, reporter, ric, wait_until

NEXT = "/2018-06-01/runtime/invocation/next"


def test_invocations_run_at_once_in_one_environment(emulators, tmp_path):
    emu = emulators(ric("barrier"), max_concurrency=2)
    results = _two_at_once(emu, tmp_path)
    assert all(r.ok and r.json()["met"] for r in results), "each saw the other running"
    assert results[0].json()["pid"] != results[1].json()["pid"], "one worker process per slot"
    emu.wait_idle(60)
    assert len(emu.environments) == 1
    assert {r.environment_id for r in emu.freeze_log} == {1}
    assert all(r.frozen_at is None and r.outcome == "done" for r in emu.freeze_log)


def test_initialize_starts_the_environment_with_every_slot_free(emulators, tmp_path):
    emu = emulators(ric("barrier"), max_concurrency=2)
    assert emu.run(emu.emulator.initialize()) is None
    results = _two_at_once(emu, tmp_path)
    assert all(r.ok and r.json()["met"] for r in results), "both slots were offered at once"
    emu.wait_idle(60)
    assert [record.cold for record in emu.freeze_log] == [False, False]
    assert [report.init_duration_ms for report in emu.reports] == [None, None]


def _two_at_once(emu, tmp_path):
    """Two `barrier` invocations at once: each waits until it sees the other running."""
    a, b = tmp_path / "a", tmp_path / "b"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(emu.invoke, {"mine": str(a), "other": str(b)})
        second = pool.submit(emu.invoke, {"mine": str(b), "other": str(a)})
        return [first.result(60), second.result(60)]


def test_the_runtime_is_told_its_concurrency(emulators):
    emu = emulators(ric("environment"), max_concurrency=3)
    env = emu.invoke({}).json()["env"]
    assert env == {
        "AWS_LAMBDA_MAX_CONCURRENCY": "3",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances",
    }


def test_a_timeout_fails_the_invocation_not_the_environment(emulators):
    emu = emulators(ric("sleep"), max_concurrency=2, timeout=1)
    late = emu.invoke({"seconds": 3})
    assert late.error_type == "Sandbox.Timedout"
    after = emu.invoke({"seconds": 0})
    assert after.ok
    emu.wait_idle(60)
    timed_out, later = emu.freeze_log
    assert timed_out.outcome == "timeout" and later.outcome == "done"
    assert not later.cold, "no reset: the next invocation found the environment warm"
    assert [r.status for r in emu.reports] == ["timeout", None]


def test_a_result_posted_after_the_timeout_gets_410(emulators, tmp_path):
    address_file = tmp_path / "address"
    emu = emulators(reporter(address_file), max_concurrency=2, timeout=1)
    result = emu.submit(emu.emulator.invoke({"n": 1}, tenant_id="tenant-7"))
    wait_until(lambda: address_file.exists() and address_file.read_text(), "the runtime started")
    address = address_file.read_text()
    connection = http.client.HTTPConnection(address)
    connection.request("GET", NEXT)
    response = connection.getresponse()
    assert json.loads(response.read()) == {"n": 1}
    request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
    invocation_id = response.getheader("Lambda-Runtime-Invocation-Id")
    assert uuid.UUID(invocation_id) and invocation_id != request_id
    assert response.getheader("Lambda-Runtime-Aws-Tenant-Id") == "tenant-7"
    assert result.result(30).error_type == "Sandbox.Timedout"
    connection.request(
        "POST",
        f"/2018-06-01/runtime/invocation/{request_id}/response",
        body=b'"late"',
        headers={"Lambda-Runtime-Invocation-Id": invocation_id},
    )
    gone = connection.getresponse()
    body = json.loads(gone.read())
    assert gone.status == 410
    assert body["errorType"] == "InvocationTimedOut" and request_id in body["errorMessage"]


def test_shutdown_sends_sigterm(emulators, tmp_path):
    sigterm = tmp_path / "sigterm"
    emu = emulators(mini("echo"), max_concurrency=2, env={"MINI_SIGTERM_FILE": str(sigterm)})
    assert emu.invoke({}).ok
    emu.close()
    assert sigterm.read_text() == "SIGTERM"
