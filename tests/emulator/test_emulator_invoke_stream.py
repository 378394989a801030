"""InvokeWithResponseStream, checked with boto3's own client (its event-stream parser)."""

import json

import boto3
import pytest
from botocore.config import Config
from emulator_support import mini, ric


def _client(emu):
    return boto3.client(
        "lambda",
        endpoint_url=emu.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, read_timeout=60),
    )


def test_streamed_response_arrives_chunk_by_chunk(emulators, tmp_path):
    emu = emulators(mini("stream_http"), env={"MINI_STREAM_CONTENT_TYPE": "text/plain"})
    go = tmp_path / "go"
    answer = _client(emu).invoke_with_response_stream(
        FunctionName="function", Payload=json.dumps({"body": json.dumps({"go": str(go)})})
    )
    assert answer["StatusCode"] == 200
    assert answer["ExecutedVersion"] == "$LATEST"
    events = iter(answer["EventStream"])
    received = b""
    while not received.endswith(b"first chunk;"):
        received += next(events)["PayloadChunk"]["Payload"]
    # The function still waits for "go": these chunks came before the rest existed.
    go.touch()
    rest = list(events)
    assert rest[-1] == {"InvokeComplete": {}}
    received += b"".join(e["PayloadChunk"]["Payload"] for e in rest[:-1])
    assert received.endswith(b"first chunk;second chunk")


def test_buffered_response_is_one_chunk(emulators):
    emu = emulators(ric("echo"))
    answer = _client(emu).invoke_with_response_stream(FunctionName="function", Payload=b'{"a":1}')
    events = list(answer["EventStream"])
    assert [list(e) for e in events] == [["PayloadChunk"], ["InvokeComplete"]]
    assert json.loads(events[0]["PayloadChunk"]["Payload"])["event"] == {"a": 1}
    assert events[1]["InvokeComplete"] == {}


@pytest.mark.parametrize(
    ("runtime", "error_code", "message"),
    [(ric("fail"), "ValueError", "boom"), (mini("stream_fail"), "RuntimeError", "mid-stream")],
)
def test_function_errors_end_the_stream(emulators, runtime, error_code, message):
    emu = emulators(runtime)
    answer = _client(emu).invoke_with_response_stream(FunctionName="function", Payload=b"{}")
    events = list(answer["EventStream"])
    complete = events[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == error_code
    assert message in json.loads(complete["ErrorDetails"])["errorMessage"]


def test_event_invocations_are_refused(emulators):
    emu = emulators(ric("echo"))
    client = _client(emu)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.invoke_with_response_stream(FunctionName="function", InvocationType="Event")
