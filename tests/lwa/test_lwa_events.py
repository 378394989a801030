"""holdfast.events: typed records from real event shapes (the SAM CLI's generated events),
partial batch failures with Lambda's ordering rules, and the pass-through codec."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest

from holdfast.errors import InvalidEvent
from holdfast.events import (
    DynamoDBRecord,
    EventBridgeEvent,
    KafkaRecord,
    KinesisRecord,
    PassThrough,
    S3Record,
    SNSRecord,
    SQSRecord,
    each_record,
    records,
)
from holdfast.sources import HTTPResponse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"


def load(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def run(coro):
    import asyncio

    return asyncio.run(coro)


def sqs_batch(bodies, fifo=False):
    event = load("sqs-receive-message")
    template = event["Records"][0]
    arn = template["eventSourceARN"] + (".fifo" if fifo else "")
    event["Records"] = [
        {**copy.deepcopy(template), "messageId": f"m{index}", "body": body, "eventSourceARN": arn}
        for index, body in enumerate(bodies)
    ]
    return event


def test_sqs_records():
    [record] = records(load("sqs-receive-message"))
    assert isinstance(record, SQSRecord)
    assert record.message_id == "19dd0b57-b21e-4ac1-bd88-01bbb068cb78"
    assert record.body == "Hello from SQS!"
    assert record.attributes["ApproximateReceiveCount"] == "1"
    assert record.event_source_arn == "arn:aws:sqs:us-east-1:123456789012:MyQueue"


def test_kinesis_records_decode_data():
    [record] = records(load("kinesis-get-records"))
    assert isinstance(record, KinesisRecord)
    assert record.data == b"Hello, this is a test 123."
    assert record.text() == "Hello, this is a test 123."
    assert record.partition_key == "partitionKey-03"
    assert record.sequence_number == "49545115243490985018280067714973144582180062593244200961"


def test_dynamodb_records_convert_images():
    insert, modify, remove = records(load("dynamodb-update"))
    assert isinstance(insert, DynamoDBRecord)
    assert (insert.event_name, modify.event_name, remove.event_name) == (
        "INSERT",
        "MODIFY",
        "REMOVE",
    )
    assert insert.keys == {"Id": Decimal(101)}
    assert insert.new_image == {"Message": "New item!", "Id": Decimal(101)}
    assert insert.old_image is None
    assert modify.old_image == {"Message": "New item!", "Id": Decimal(101)}
    assert remove.new_image is None
    assert modify.sequence_number == "4421584500000000017450439092"


def test_dynamodb_attribute_types():
    record = load("dynamodb-update")["Records"][0]
    record["dynamodb"]["NewImage"] = {
        "m": {"M": {"l": {"L": [{"BOOL": True}, {"NULL": True}, {"B": "AAE="}]}}},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
    }
    parsed = DynamoDBRecord.from_record(record)
    assert parsed.new_image == {
        "m": {"l": [True, None, b"\x00\x01"]},
        "ss": {"a", "b"},
        "ns": {Decimal(1), Decimal("2.5")},
    }


def test_sns_s3_and_eventbridge_records():
    [sns] = records(load("sns-notification"))
    assert isinstance(sns, SNSRecord)
    assert (sns.subject, sns.message) == ("example subject", "example message")
    [s3] = records(load("s3-put"))
    assert isinstance(s3, S3Record)
    assert (s3.bucket, s3.key, s3.size) == ("example-bucket", "test/key", 1024)
    [scheduled] = records(load("eventbridge-scheduled-event"))
    assert isinstance(scheduled, EventBridgeEvent)
    assert (scheduled.source, scheduled.detail_type) == ("aws.events", "Scheduled Event")


def test_s3_keys_are_url_decoded():
    event = load("s3-put")
    event["Records"][0]["s3"]["object"]["key"] = "photos/my+cat%C3%A9.jpg"
    assert records(event)[0].key == "photos/my caté.jpg"


def test_kafka_records():
    # The shape of the AWS Lambda Developer Guide's Amazon MSK example event.
    event = {
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/vpc-2priv-2pub/x",
        "bootstrapServers": "b-2.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092",
        "records": {
            "mytopic-0": [
                {
                    "topic": "mytopic",
                    "partition": 0,
                    "offset": 15,
                    "timestamp": 1545084650987,
                    "timestampType": "CREATE_TIME",
                    "key": "abcDEFghiJKLmnoPQRstuVWXyz1234==",
                    "value": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==",
                    "headers": [
                        {"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}
                    ],
                }
            ]
        },
    }
    [record] = records(event)
    assert isinstance(record, KafkaRecord)
    assert (record.topic, record.partition, record.offset) == ("mytopic", 0, 15)
    assert record.value == b"Hello, this is a test."
    assert record.headers == [("headerKey", b"headerValue")]


def test_unknown_payloads_are_refused():
    with pytest.raises(InvalidEvent):
        records({"hello": "world"})
    with pytest.raises(InvalidEvent):
        records({"Records": [{"eventSource": "aws:nothing"}]})


def test_standard_sqs_reports_exactly_the_failed_messages():
    seen = []

    @each_record
    async def handle(record, context):
        seen.append(record.message_id)
        if record.body == "bad":
            raise ValueError("bad message")

    answer = run(handle(sqs_batch(["ok", "bad", "ok", "bad"]), None))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]}
    assert seen == ["m0", "m1", "m2", "m3"]


def test_fifo_sqs_stops_at_the_first_failure_and_reports_the_rest():
    seen = []

    def handle(record, context):  # plain functions work too
        seen.append(record.message_id)
        if record.body == "bad":
            raise ValueError("bad message")

    answer = run(each_record(handle)(sqs_batch(["ok", "bad", "ok"], fifo=True), None))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    assert seen == ["m0", "m1"]


def test_all_good_batch_reports_no_failures():
    answer = run(each_record(lambda record, context: None)(sqs_batch(["a", "b"]), None))
    assert answer == {"batchItemFailures": []}


def test_streams_stop_at_the_first_failure():
    event = load("dynamodb-update")

    def handle(record, context):
        if record.event_name == "MODIFY":
            raise RuntimeError("cannot")

    answer = run(each_record(handle)(event, None))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "4421584500000000017450439092"}]}

    kinesis = load("kinesis-get-records")
    answer = run(each_record(lambda r, c: 1 / 0)(kinesis, None))
    sequence = kinesis["Records"][0]["kinesis"]["sequenceNumber"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": sequence}]}


def test_sources_without_partial_batches_fail_the_invocation():
    def handle(record, context):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        run(each_record(handle)(load("s3-put"), None))
    assert run(each_record(lambda r, c: None)(load("sns-notification"), None)) is None


def test_pass_through_request():
    event = load("sqs-receive-message")
    request = PassThrough("/events").decode(event, "")
    assert (request.method, request.path, request.query_string) == ("POST", "/events", b"")
    assert (b"content-type", b"application/json") in request.headers
    assert json.loads(request.body) == event


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        (b'{"batchItemFailures": []}', {"batchItemFailures": []}),
        (b"[1, 2]", [1, 2]),
        (b'"text"', "text"),
        (b"not json", None),
        (b"\xff\xfe", None),
        (b"", None),
    ],
)
def test_pass_through_answer_is_the_json_body(body, answer):
    assert PassThrough("/events").encode(HTTPResponse(200, [], body)) == answer
