"""The Runtime and Extensions APIs driven by hand: misuse is answered as RIE answers it.

The "runtime" the emulator starts only reports its AWS_LAMBDA_RUNTIME_API and sleeps; the test
plays the runtime (and the extensions) itself over http.client.
"""

import json
import re
import threading
import time
import uuid

import pytest
from emulator_support import call, reporter, wait_until

RUNTIME = "/2018-06-01/runtime"
EXTENSION = "/2020-01-01/extension"


def error_type(result):
    return json.loads(result[2])["errorType"]


def in_background(function, *args):
    """Run a blocking call (a long poll) in a thread; returns a dict that fills with the result."""
    box = {}

    def run():
        try:
            box["result"] = function(*args)
        except OSError as exc:  # the emulator dropped the connection at shutdown
            box["error"] = exc

    threading.Thread(target=run, daemon=True).start()
    return box


def wait_for(box):
    for _ in range(3000):
        if box:
            return box["result"]
        time.sleep(0.01)
    raise AssertionError("the long poll never returned")


@pytest.fixture
def fake_runtime(emulators, tmp_path):
    """An emulator whose runtime the test plays; yields (emulator, Runtime API address)."""
    address_file = tmp_path / "address"
    emu = emulators(reporter(address_file))

    def start_invocation(event):
        future = emu.submit(emu.emulator.invoke(event))
        for _ in range(3000):
            if address_file.exists() and address_file.read_text():
                return future, address_file.read_text()
            time.sleep(0.01)
        raise AssertionError("the runtime process never started")

    return emu, start_invocation


def test_runtime_api_misuse(fake_runtime):
    emu, start_invocation = fake_runtime
    future, api = start_invocation({"n": 1})

    assert error_type(call(api, "POST", f"{RUNTIME}/invocation/x/response", b"1")) == (
        "InvalidStateTransition"
    )
    status, headers, body = call(api, "GET", f"{RUNTIME}/invocation/next")
    assert status == 200 and json.loads(body) == {"n": 1}
    request_id = headers["Lambda-Runtime-Aws-Request-Id"]
    assert int(headers["Lambda-Runtime-Deadline-Ms"]) > time.time() * 1000
    assert headers["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:function")
    assert re.fullmatch(
        r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=1",
        headers["Lambda-Runtime-Trace-Id"],
    )
    assert "Lambda-Runtime-Client-Context" not in headers
    assert "Lambda-Runtime-Cognito-Identity" not in headers

    second_next = call(api, "GET", f"{RUNTIME}/invocation/next")
    assert second_next[0] == 403 and error_type(second_next) == "InvalidStateTransition"
    wrong_id = call(api, "POST", f"{RUNTIME}/invocation/{uuid.uuid4()}/response", b"1")
    assert wrong_id[0] == 400 and error_type(wrong_id) == "InvalidRequestID"
    bad_mode = call(
        api,
        "POST",
        f"{RUNTIME}/invocation/{request_id}/response",
        b"1",
        {"Lambda-Runtime-Function-Response-Mode": "buffered"},
    )
    assert bad_mode[0] == 400 and error_type(bad_mode) == "InvalidFunctionResponseMode"
    late_init_error = call(api, "POST", f"{RUNTIME}/init/error", b"{}")
    assert late_init_error[0] == 403 and error_type(late_init_error) == "InvalidStateTransition"
    late_register = call(
        api, "POST", f"{EXTENSION}/register", b'{"events": []}', {"Lambda-Extension-Name": "late"}
    )
    assert late_register[0] == 403 and error_type(late_register) == "Extension.RegistrationClosed"

    # Lambda-Runtime-Invocation-Id tells attempts of one request id apart: another is refused.
    invocation_id = headers["Lambda-Runtime-Invocation-Id"]
    assert uuid.UUID(invocation_id) and invocation_id != request_id
    other_attempt = call(
        api,
        "POST",
        f"{RUNTIME}/invocation/{request_id}/response",
        b"1",
        {"Lambda-Runtime-Invocation-Id": str(uuid.uuid4())},
    )
    assert other_attempt[0] == 400 and error_type(other_attempt) == "InvalidRequestID"

    accepted = call(
        api,
        "POST",
        f"{RUNTIME}/invocation/{request_id}/response",
        b'"answer"',
        {"Lambda-Runtime-Invocation-Id": invocation_id},
    )
    assert accepted[0] == 202 and json.loads(accepted[2]) == {"status": "OK"}
    assert future.result(30).json() == "answer"
    again = call(api, "POST", f"{RUNTIME}/invocation/{request_id}/response", b'"again"')
    assert again[0] == 403 and error_type(again) == "InvalidStateTransition"

    assert call(api, "GET", "/2018-06-01/nowhere")[0] == 404
    # The Logs API is served (as the Telemetry API is): only for a registered extension.
    logs = call(api, "PUT", "/2020-08-15/logs", b"{}")
    assert logs[0] == 403 and error_type(logs) == "Extension.MissingExtensionIdentifier"

    # Next invocation: a response over 6 MiB + 100 bytes is refused and the caller told so.
    poll = in_background(call, api, "GET", f"{RUNTIME}/invocation/next")
    second = emu.submit(emu.emulator.invoke({"n": 2}))
    status, headers, _ = wait_for(poll)
    request_id = headers["Lambda-Runtime-Aws-Request-Id"]
    oversized = call(
        api, "POST", f"{RUNTIME}/invocation/{request_id}/response", b"x" * (6 * 1024 * 1024 + 101)
    )
    assert oversized[0] == 413 and error_type(oversized) == "RequestEntityTooLarge"
    assert json.loads(oversized[2])["errorMessage"] == (
        "Exceeded maximum allowed payload size (6291556 bytes)."
    )
    assert second.result(30).error_type == "Function.ResponseSizeTooLarge"

    # An error post without the error-type header (as awslambdaric sends them).
    poll = in_background(call, api, "GET", f"{RUNTIME}/invocation/next")
    third = emu.submit(emu.emulator.invoke({"n": 3}))
    request_id = wait_for(poll)[1]["Lambda-Runtime-Aws-Request-Id"]
    failure = {"errorType": "KeyError", "errorMessage": "'x'", "stackTrace": []}
    posted = call(api, "POST", f"{RUNTIME}/invocation/{request_id}/error", json.dumps(failure))
    assert posted[0] == 202
    result = third.result(30)
    assert result.function_error == "Unhandled" and result.json() == failure


def test_extension_registration(fake_runtime):
    emu, start_invocation = fake_runtime
    future, api = start_invocation({"n": 1})

    def register(name, body, **headers):
        if name is not None:
            headers["Lambda-Extension-Name"] = name
        return call(api, "POST", f"{EXTENSION}/register", body, headers)

    assert error_type(register(None, b'{"events": []}')) == "Extension.InvalidExtensionName"
    assert error_type(register("x", b"not json")) == "InvalidRequestFormat"
    assert error_type(register("x", b'{"events": ["SHUTDOWN"]}')) == "Extension.InvalidEventType"
    assert error_type(register("x", b'{"events": ["BOGUS"]}')) == "Extension.InvalidEventType"

    status, headers, body = register(
        "watcher",
        b'{"events": ["INVOKE"]}',
        **{"Lambda-Extension-Accept-Feature": "accountId"},
    )
    assert status == 200
    registration = json.loads(body)
    assert registration["functionName"] == "function"
    assert registration["functionVersion"] == "$LATEST"
    assert registration["accountId"] == "000000000000"
    assert registration["handler"].endswith("address"), "_HANDLER: the command's last word"
    watcher = headers["Lambda-Extension-Identifier"]
    assert error_type(register("watcher", b'{"events": []}')) == "Extension.InvalidExtensionState"
    idle = [
        register(f"idle-{i}", b'{"events": []}')[1]["Lambda-Extension-Identifier"] for i in range(9)
    ]
    assert error_type(register("eleventh", b'{"events": []}')) == "Extension.TooManyExtensions"

    def next_event(identifier):
        return call(
            api,
            "GET",
            f"{EXTENSION}/event/next",
            headers={"Lambda-Extension-Identifier": identifier},
        )

    missing = call(api, "GET", f"{EXTENSION}/event/next")
    assert missing[0] == 403 and error_type(missing) == "Extension.MissingExtensionIdentifier"
    assert error_type(next_event("garbage")) == "Extension.InvalidExtensionIdentifier"
    assert error_type(next_event(str(uuid.uuid4()))) == "Extension.UnknownExtensionIdentifier"
    no_type = call(
        api, "POST", f"{EXTENSION}/exit/error", b"", {"Lambda-Extension-Identifier": watcher}
    )
    assert error_type(no_type) == "Extension.MissingHeader"

    # Init ends when the runtime and every extension have called next.
    for identifier in idle:
        in_background(next_event, identifier)
    invoke_event = in_background(next_event, watcher)
    _, headers, _ = call(api, "GET", f"{RUNTIME}/invocation/next")
    request_id = headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.loads(wait_for(invoke_event)[2])
    assert event["eventType"] == "INVOKE" and event["requestId"] == request_id

    call(api, "POST", f"{RUNTIME}/invocation/{request_id}/response", b"{}")
    assert future.result(30).ok
    in_background(call, api, "GET", f"{RUNTIME}/invocation/next")
    in_background(next_event, watcher)
    emu.wait_idle(30)
    assert emu.freeze_log[-1].outcome == "frozen"


def test_missing_runtime_command(emulators, tmp_path):
    emu = emulators([str(tmp_path / "no-such-bootstrap")])
    result = emu.invoke({})
    assert result.error_type == "Runtime.InvalidEntrypoint"
    assert "no-such-bootstrap" in result.json()["errorMessage"]


def test_request_and_invocation_ids_are_uuid4s_that_seeding_random_cannot_repeat():
    import random

    from holdfast.emulator.attempt import new_trace_id
    from holdfast.emulator.invoke import new_request_id

    drawn = []
    for _ in range(2):
        random.seed(17)  # as Hypothesis does before each example
        drawn.append(new_request_id())
    drawn += [new_request_id() for _ in range(1000)]
    assert len(set(drawn)) == len(drawn)
    for request_id in drawn:
        parsed = uuid.UUID(request_id)
        assert str(parsed) == request_id
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert re.fullmatch(
        r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=1", new_trace_id()
    )


def test_a_warm_attempt_runs_in_no_task_until_it_ends_and_a_shutdown_still_answers_it(
    fake_runtime,
):
    emu, start_invocation = fake_runtime
    future, api = start_invocation({"n": 1})
    _, headers, _ = call(api, "GET", f"{RUNTIME}/invocation/next")
    request_id = headers["Lambda-Runtime-Aws-Request-Id"]
    call(api, "POST", f"{RUNTIME}/invocation/{request_id}/response", b'"one"')
    assert future.result(30).payload == b'"one"'
    polled = in_background(call, api, "GET", f"{RUNTIME}/invocation/next")
    environment = emu.environments[0]
    wait_until(lambda: emu.freeze_log[-1].outcome == "frozen", "the first attempt's freeze")

    second = emu.submit(emu.emulator.invoke({"n": 2}))
    assert json.loads(wait_for(polled)[2]) == {"n": 2}
    # Dispatched to the warm environment: watched, and no task waits for its end.
    assert list(environment._watched) and not environment._tasks
    emu.close()
    result = second.result(30)
    assert result.function_error == "Unhandled"
    assert json.loads(result.payload)["errorType"] == "Sandbox.Shutdown"
    assert emu.freeze_log[-1].outcome == "shutdown" and not environment._watched
