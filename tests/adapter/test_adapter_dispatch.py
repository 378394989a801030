"""Pins on dispatch: the kind table at its edges (empty and odd record lists, near-miss
EventBridge and warmer shapes, Kafka's two spellings), claims (order, replacement, the
``accepts`` check, before the warmer), ``call`` on sync and async handlers, and what
``describe`` says of each shape."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from holdfast import dispatch as dispatch_module
from holdfast.dispatch import EventKind, call, claim, describe, dispatch, source_name
from holdfast.sources import Codecs

CODECS = Codecs()


@pytest.fixture
def claims(monkeypatch):
    """Claims made in a test are gone after it (``holdfast.tasks`` may have made its own)."""
    monkeypatch.setattr(dispatch_module, "_claims", [])


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ({"Records": []}, "custom"),
        ({"Records": ["aws:sqs"]}, "custom"),
        ({"Records": {"eventSource": "aws:sqs"}}, "custom"),
        ({"Records": [{}]}, "custom"),
        ({"Records": [{"eventSource": "aws:sqs"}, {"eventSource": "aws:sns"}]}, "sqs"),
        ({"Records": [{"EventSource": "aws:sns"}]}, "sns"),
        ({"Records": [{"eventSource": "aws:dynamodb"}]}, "dynamodb"),
        ({"Records": [{"eventSource": "aws:kinesis"}]}, "kinesis"),
        ({"eventSource": "SelfManagedKafka", "records": {}}, "kafka"),
        ({"eventSource": "aws:kafka"}, "kafka"),
        ({"eventSource": "aws:kafka2"}, "custom"),
        ({"detail-type": "Scheduled Event"}, "custom"),  # no source: not EventBridge
        ({"source": "aws.events"}, "custom"),  # no detail-type
        ({"source": "aws.events", "detail-type": "Scheduled Event"}, "schedule"),
        ({"source": "aws.events", "detail-type": "Other"}, "eventbridge"),
        ({"source": "my.app", "detail-type": "Scheduled Event"}, "eventbridge"),
        ({}, "custom"),
    ],
)
def test_the_kind_table_at_its_edges(event, name):
    assert source_name(event) == name
    assert dispatch(event, CODECS) == EventKind(name)


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ({"warmer": True}, "warmer"),
        ({"warmer": False}, "custom"),
        ({"warmup": 0}, "custom"),
        ({"warmup": {"concurrency": 1}}, "warmer"),
        ({"source": "serverless-plugin-warmup"}, "warmer"),
        ({"source": "serverless-plugin-warmup-x"}, "custom"),
        # A warmer flag on another source's event is that source's event.
        ({"warmer": True, "Records": [{"eventSource": "aws:s3"}]}, "s3"),
        ({"warmer": True, "source": "a", "detail-type": "b"}, "eventbridge"),
    ],
)
def test_warmers_and_near_misses(event, name):
    kind = dispatch(event, CODECS)
    assert kind.name == name and kind.codec is None and kind.handler is None
    assert not kind.is_http


def test_http_events_are_http_and_nothing_else_is():
    kind = dispatch({"version": "2.0", "requestContext": {"http": {"method": "GET"}}}, CODECS)
    assert kind.name == "http" and kind.is_http and kind.codec is CODECS.apigw_v2
    assert dispatch({"warmer": True}, CODECS).is_http is False


def handler_a(event: Any, context: Any) -> str:
    return "a"


def handler_b(event: Any, context: Any) -> str:
    return "b"


def test_a_claim_names_the_events_it_accepts_and_only_those(claims):
    claim("mine", ("custom",), lambda event: "mine" in event, handler_a)
    kind = dispatch({"mine": 1}, CODECS)
    assert kind == EventKind("mine", handler=handler_a) and not kind.is_http
    assert dispatch({"yours": 1}, CODECS) == EventKind("custom")  # not accepted
    # Accepted, but from a source the claim does not name.
    assert dispatch({"mine": 1, "Records": [{"eventSource": "aws:sqs"}]}, CODECS).name == "sqs"


def test_claims_come_before_the_warmer_check_in_the_order_made(claims):
    claim("first", ("custom",), lambda event: True, handler_a)
    claim("second", ("custom",), lambda event: True, handler_b)
    assert dispatch({"warmer": True}, CODECS).name == "first"


def test_claiming_a_name_again_replaces_its_claim(claims):
    claim("mine", ("custom",), lambda event: True, handler_a)
    claim("other", ("sqs",), lambda event: True, handler_a)
    claim("mine", ("custom",), lambda event: True, handler_b)
    assert dispatch({}, CODECS) == EventKind("mine", handler=handler_b)
    assert dispatch({"Records": [{"eventSource": "aws:sqs"}]}, CODECS).name == "other"
    assert len(dispatch_module._claims) == 2


def test_an_http_event_is_never_claimed(claims):
    claim("greedy", ("custom", "sqs"), lambda event: True, handler_a)
    event = {"version": "2.0", "requestContext": {"http": {"method": "GET"}}}
    assert dispatch(event, CODECS).name == "http"
    assert dispatch([1], CODECS).name == "custom"  # not an object: never asked


def test_call_awaits_what_an_async_handler_returns_and_passes_a_sync_result_through():
    async def answer(event: Any, context: Any) -> Any:
        await asyncio.sleep(0)
        return (event, context)

    def sync(event: Any, context: Any) -> Any:
        return [event, context]

    assert asyncio.run(call(answer, 1, 2)) == (1, 2)
    assert asyncio.run(call(sync, 1, 2)) == [1, 2]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([1], "a Lambda HTTP event is a JSON object, got list"),
        ({"Records": [{"eventSource": "aws:sqs"}]}, "not an HTTP event: records from aws:sqs"),
        ({"Records": [{"EventSource": "aws:sns"}]}, "not an HTTP event: records from aws:sns"),
        ({"Records": [{}]}, "not an HTTP event: records from unknown"),
        ({"detail-type": "Thing"}, "not an HTTP event: an EventBridge 'Thing' event"),
        ({}, "found no keys"),
        ({"b": 1, "a": 2}, "found a, b"),
        ({str(n): n for n in range(10)}, "found 0, 1, 2, 3, 4, 5, 6, 7"),
    ],
)
def test_describe_says_what_an_event_was(event, message):
    assert describe(event).endswith(message)


def test_describe_with_records_that_are_not_objects_lists_the_keys():
    assert describe({"Records": []}).endswith("found Records")
    assert describe({"Records": ["x"]}).endswith("found Records")


def test_the_first_record_names_the_source_whatever_follows():
    event = {"Records": [{"eventSource": "aws:sqs"}, "not a record"]}
    assert dispatch(event, CODECS).name == "sqs"
    assert describe(event).endswith("records from aws:sqs")


def test_an_event_kind_is_an_immutable_value():
    kind = dispatch({}, CODECS)
    with pytest.raises(AttributeError):
        kind.name = "sqs"  # type: ignore[misc]
    assert kind == EventKind("custom") and hash(kind) == hash(EventKind("custom"))
