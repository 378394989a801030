"""The host interface: one dispatch names an event's kind; ``begin`` → ``outcome`` (Buffered,
Streamed, Failed) → ``handed_over`` → ``drain``; the app's final ``send`` returns only once the
response has been handed over."""

from __future__ import annotations

import asyncio

import pytest
from adapter_events import Request, function_url_event, load_event, rest_event
from fastapi import BackgroundTasks, FastAPI

import holdfast
from holdfast.dispatch import EventKind, dispatch, source_name
from holdfast.outcome import Buffered, Failed, Streamed
from holdfast.sources import Codecs

CODECS = Codecs()


# -- dispatch ----------------------------------------------------------------------------------

HTTP_FIXTURES = {
    "function-url": "apigw-v2",
    "apigateway-http-api": "apigw-v2",
    "apigateway-aws-proxy": "apigw-v1",
    "alb-request": "alb",
    "alb-multi-value": "alb",
    "lattice-v1": "lattice-v1",
    "lattice-v2": "lattice-v2",
}


@pytest.mark.parametrize("fixture", sorted(HTTP_FIXTURES))
def test_http_events_are_named_http_with_their_codec(fixture):
    kind = dispatch(load_event(fixture), CODECS)
    assert kind.name == "http" and kind.is_http
    assert kind.codec is not None and kind.codec.name.lower().startswith(
        HTTP_FIXTURES[fixture].split("-")[0]
    )


OTHER_EVENTS = {
    "sqs": load_event("sqs-receive-message"),
    "schedule": load_event("eventbridge-scheduled-event"),
    "eventbridge": {"source": "aws.s3", "detail-type": "Object Created", "detail": {}},
    "sns": {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "hi"}}]},
    "s3": {"Records": [{"eventSource": "aws:s3", "s3": {}}]},
    "dynamodb": {"Records": [{"eventSource": "aws:dynamodb", "dynamodb": {}}]},
    "kinesis": {"Records": [{"eventSource": "aws:kinesis", "kinesis": {}}]},
    "kafka": {"eventSource": "aws:kafka", "records": {"topic-0": []}},
    "custom": {"order": 42},
}


@pytest.mark.parametrize("name", sorted(OTHER_EVENTS))
def test_other_sources_are_named(name):
    assert dispatch(OTHER_EVENTS[name], CODECS) == EventKind(name)


@pytest.mark.parametrize(
    "event",
    [{"warmer": True, "concurrency": 2}, {"warmup": 1}, {"source": "serverless-plugin-warmup"}],
)
def test_warmers_are_named(event):
    assert dispatch(event, CODECS).name == "warmer"


@pytest.mark.parametrize("event", [None, [1], "GET /", 3, b"raw"])
def test_payloads_that_are_not_objects_are_custom(event):
    assert dispatch(event, CODECS).name == "custom"


def test_an_odd_record_source_is_custom():
    assert source_name({"Records": [{"eventSource": "aws:ses"}]}) == "custom"


# -- outcomes through the sync handler and begin() ---------------------------------------------


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"hel", "more_body": True})
    await send({"type": "http.response.body", "body": b"lo"})


def run(adapter, coro):
    return adapter.engine.run(coro)


def test_a_warmer_is_answered_without_running_the_app(make_adapter, recorder):
    handler = make_adapter(recorder)
    assert handler({"warmer": True}, None) == {}
    assert recorder.requests == []


def test_on_registers_a_handler_for_a_kind(make_adapter):
    handler = make_adapter(hello)
    seen = []

    @handler.on("sqs")
    async def consume(event, context):
        holdfast.after_response(seen.append, "after")
        return {"batchItemFailures": []}

    @handler.on("warmer")
    def warm(event, context):
        return {"warm": True}

    assert handler(OTHER_EVENTS["sqs"], None) == {"batchItemFailures": []}
    assert seen == ["after"]
    assert handler({"warmup": True}, None) == {"warm": True}
    # No handler for S3: POSTed to the app's pass-through path; "hello" is no JSON answer.
    assert handler(OTHER_EVENTS["s3"], None) is None
    with pytest.raises(ValueError, match="unknown event kind 'http'"):
        handler.on("http")


def test_a_failing_event_handler_is_a_function_error(make_adapter):
    handler = make_adapter(hello)

    @handler.on("custom")
    def broken(event, context):
        raise KeyError("order")

    with pytest.raises(KeyError):
        handler({"order": 1}, None)
    invocation = handler.begin({"order": 1}, None)
    outcome = run(handler, invocation.outcome())
    assert isinstance(outcome, Failed) and outcome.error_type == "KeyError"
    assert outcome.body == {"errorMessage": "'order'", "errorType": "KeyError", "stackTrace": []}


def test_buffered_outcome(make_adapter):
    handler = make_adapter(hello)

    async def invoke():
        invocation = handler.begin(function_url_event(Request()), None)
        outcome = await invocation.outcome()
        invocation.handed_over()
        await invocation.drain(None)
        return outcome

    outcome = run(handler, invoke())
    assert isinstance(outcome, Buffered)
    assert outcome.payload["body"] == "hello"
    assert outcome.payload["headers"]["x-a"] == "1"


def test_invalid_event_is_a_failed_outcome_not_an_exception_from_begin(make_adapter):
    handler = make_adapter(hello)
    invocation = handler.begin({"httpMethod": 5, "requestContext": {}}, None)
    outcome = run(handler, invocation.outcome())
    assert isinstance(outcome, Failed)
    assert outcome.error_type == "InvalidEvent"
    assert isinstance(outcome.error, holdfast.InvalidEvent)


def test_error_status_codes_are_failed_outcomes(make_adapter):
    async def bad_gateway(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b"upstream down"})

    handler = make_adapter(bad_gateway, error_status_codes=[502])
    for streaming in (False, True):
        invocation = handler.begin(function_url_event(Request()), None, streaming=streaming)
        outcome = run(handler, invocation.outcome())
        assert isinstance(outcome, Failed)
        assert (outcome.error_type, outcome.message) == (
            "HTTPError.502",
            '{"statusCode":502,"body":"upstream down"}',
        )
        run(handler, invocation.drain(None))


async def collect(body):
    return [chunk async for chunk in body]


def test_streamed_outcome_has_the_head_before_the_body(make_adapter):
    gate = asyncio.Event()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        headers = [(b"x-odd", b"a"), (b"set-cookie", b"a=1"), (b"x-odd", b"c")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await gate.wait()
        await send({"type": "http.response.body", "body": b"second"})

    handler = make_adapter(app)

    async def invoke():
        invocation = handler.begin(function_url_event(Request()), None, streaming=True)
        outcome = await invocation.outcome()
        assert isinstance(outcome, Streamed)
        assert (outcome.status, outcome.headers, outcome.cookies) == (
            201,
            {"x-odd": "a,c"},
            ["a=1"],
        )
        body = outcome.body.__aiter__()
        assert await body.__anext__() == b"first"
        gate.set()
        rest = await collect(body)
        invocation.handed_over()
        await invocation.drain(None)
        return rest

    assert run(handler, invoke()) == [b"second"]


def test_a_stream_whose_app_fails_midway_raises_from_its_body(make_adapter, caplog):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ConnectionError("database gone")

    handler = make_adapter(app)

    async def invoke():
        invocation = handler.begin(function_url_event(Request()), None, streaming=True)
        outcome = await invocation.outcome()
        chunks = []
        with pytest.raises(ConnectionError, match="database gone"):
            async for chunk in outcome.body:
                chunks.append(chunk)
        invocation.handed_over()
        report = await invocation.drain(None)
        return chunks, report

    chunks, report = run(handler, invoke())
    assert chunks == [b"part"]
    assert report.failed == 1


def test_an_app_failing_before_its_stream_starts_streams_a_500(make_adapter):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            raise RuntimeError("boom")

    handler = make_adapter(app)

    async def invoke():
        invocation = handler.begin(function_url_event(Request()), None, streaming=True)
        outcome = await invocation.outcome()
        return outcome, await collect(outcome.body)

    outcome, body = run(handler, invoke())
    assert isinstance(outcome, Streamed) and outcome.status == 500
    assert body == [b"Internal Server Error"]


# -- hole 2: the final send returns only once the response is handed over ----------------------


def test_the_final_send_returns_only_after_the_hand_over(make_adapter):
    order = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        order.append("after the last chunk")  # a BackgroundTask's CPU work would be here

    handler = make_adapter(app)

    async def invoke():
        invocation = handler.begin(rest_event(Request()), None)
        outcome = await invocation.outcome()
        for _ in range(5):  # however long the host takes to deliver, the app waits
            await asyncio.sleep(0)
        order.append("delivered")
        invocation.handed_over()
        report = await invocation.drain(None)
        return outcome, report

    outcome, report = run(handler, invoke())
    assert outcome.payload["body"] == "done"
    assert order == ["delivered", "after the last chunk"]
    assert report.drained == 0  # a plain endpoint owes nothing: nothing counted


def test_background_work_that_computes_before_awaiting_runs_after_the_sync_handler_answers(
    make_adapter,
):
    order = []
    app = FastAPI()

    async def crunch():
        order.append("background")  # CPU before the first await
        await asyncio.sleep(0)
        order.append("background awaited")

    @app.get("/")
    async def home(background: BackgroundTasks):
        background.add_task(crunch)
        return {"ok": True}

    handler = make_adapter(app)

    async def invoke():
        invocation = handler.begin(rest_event(Request()), None)
        await invocation.outcome()
        order.append("response ready")
        await asyncio.sleep(0.01)
        order.append("handed over")
        invocation.handed_over()
        return await invocation.drain(None)

    report = run(handler, invoke())
    assert order == ["response ready", "handed over", "background", "background awaited"]
    assert report.drained == 1


def test_a_stream_the_host_stops_reading_does_not_hold_the_app(make_adapter):
    # The client went away after the first chunk: once the host hands over, the app's further
    # writes go nowhere instead of waiting for room until the deadline.
    sent = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for n in range(100):
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
            sent.append(n)
        await send({"type": "http.response.body", "body": b""})

    handler = make_adapter(app)

    async def invoke():
        invocation = handler.begin(function_url_event(Request()), None, streaming=True)
        outcome = await invocation.outcome()
        assert await outcome.body.__anext__() == b"x"
        invocation.handed_over()
        return await invocation.drain(None)

    report = run(handler, invoke())
    assert sent == list(range(100))
    assert (report.cancelled, report.failed) == ([], 0)
