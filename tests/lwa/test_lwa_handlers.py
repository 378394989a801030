"""Python handlers for non-HTTP events on the adapter: typed records, partial batch failures,
predicates (a warmer of your own shape), after-response work — in-process and under
`holdfast run` in the emulator."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

import holdfast
from holdfast.emulator import ThreadedEmulator
from holdfast.events import SQSRecord, each_record

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "fixtures" / "events"


def sqs_batch(*bodies):
    event = json.loads((FIXTURES / "sqs-receive-message.json").read_text())
    template = event["Records"][0]
    event["Records"] = [
        {**copy.deepcopy(template), "messageId": f"m{index}", "body": body}
        for index, body in enumerate(bodies)
    ]
    return event


class App:
    """An ASGI app that counts its HTTP requests and answers JSON."""

    def __init__(self):
        self.requests = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        self.requests.append((scope["method"], scope["path"]))
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"from": "app"}'})


@pytest.fixture
def adapter():
    made = holdfast.Adapter(App(), lifespan="off")
    yield made
    made.close()


def test_batch_failures_and_after_response_work(adapter):
    done = []

    @adapter.on("sqs")
    @each_record
    async def consume(record: SQSRecord, context):
        if record.body == "bad":
            raise ValueError("no")
        holdfast.after_response(done.append, record.message_id)

    answer = adapter(sqs_batch("ok", "bad", "ok"), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert sorted(done) == ["m0", "m2"]  # drained before the handler returned (no host)
    assert adapter.app.requests == []


def test_predicate_handlers_come_first(adapter):
    @adapter.on(lambda event: event.get("source") == "my.warmer")
    def warm(event, context):
        return {"warm": True}

    assert adapter({"source": "my.warmer"}, None) == {"warm": True}
    assert adapter.app.requests == []
    # Another custom payload: no handler, so POSTed to the app's pass-through path.
    assert adapter({"source": "other"}, None) == {"from": "app"}
    assert adapter.app.requests == [("POST", "/events")]


def test_builtin_warmer_never_touches_the_app(adapter):
    assert adapter({"warmer": True}, None) == {}
    assert adapter.app.requests == []


def test_pass_through_path_is_configurable(monkeypatch):
    monkeypatch.setenv("AWS_LWA_PASS_THROUGH_PATH", "/sqs-in")
    made = holdfast.Adapter(App(), lifespan="off")
    try:
        assert made(sqs_batch("x"), None) == {"from": "app"}
        assert made.app.requests == [("POST", "/sqs-in")]
    finally:
        made.close()


def test_pass_through_error_status_codes_apply():
    async def failing(scope, receive, send):
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"broken"})

    made = holdfast.Adapter(failing, lifespan="off", error_status_codes="500")
    try:
        with pytest.raises(holdfast.HTTPStatusError, match='"statusCode":500'):
            made(sqs_batch("x"), None)
    finally:
        made.close()


def test_handlers_under_the_custom_runtime(tmp_path):
    record = tmp_path / "record.txt"
    record.touch()
    emulator = ThreadedEmulator(
        [sys.executable, "-m", "holdfast", "run", "handler_app:handler"],
        cwd=str(HERE),
        env={"HOLDFAST_TEST_RECORD": str(record)},
        timeout=30,
        log=lambda line: None,
    )
    emulator.start()
    try:
        result = emulator.invoke(sqs_batch("ok", "bad", "ok"))
        assert result.json() == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
        emulator.wait_idle(timeout=30)
        freeze = emulator.freeze_log[-1]
        finished = dict(line.split() for line in record.read_text().splitlines())
        assert sorted(finished) == ["m0", "m2"]
        assert all(float(at) < freeze.frozen_at for at in finished.values())
        assert emulator.invoke({"keep-warm": "please"}).json() == {"warm": True}
    finally:
        emulator.close()
