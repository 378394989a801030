"""Non-HTTP events: typed records, per-record handlers with partial batch failures, and the
pass-through of any other event to the app as an HTTP POST.

Handlers are registered on the adapter (:meth:`holdfast.Adapter.on`); this module gives them
typed records and Lambda's partial-batch protocol::

    @handler.on("sqs")
    @holdfast.events.each_record
    async def resize(record: SQSRecord, context) -> None:
        ...  # raising reports just this message in ``batchItemFailures``

:func:`each_record` answers ``{"batchItemFailures": [...]}`` for SQS, Kinesis and DynamoDB
Streams (enable ``ReportBatchItemFailures`` on the event source mapping). The rules follow what
Lambda does with the answer: a standard SQS queue retries exactly the failed messages, so every
record is tried; a FIFO queue and the ordered streams (Kinesis, DynamoDB) must not process a
record after a failed one, so processing stops at the first failure and the failed record (and,
for FIFO, every one after it) is reported. For other sources a failure fails the invocation.

An event no handler claims goes, as under the Lambda Web Adapter, to the app as
``POST {pass-through path}`` (``AWS_LWA_PASS_THROUGH_PATH``, default ``/events``) with the raw
event as the JSON body; the app's answer, parsed as JSON (``null`` when it is not JSON), is the
invocation's result — see :class:`PassThrough`.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import unquote_plus

from holdfast._types import LambdaContext
from holdfast.dispatch import KAFKA_SOURCES, call, record_source
from holdfast.errors import InvalidEvent
from holdfast.sources import EventCodec, HTTPRequest, HTTPResponse
from holdfast.sources.limits import LAMBDA_RESPONSE_LIMIT
from holdfast.sources.platform import platform_headers

__all__ = [
    "DynamoDBRecord",
    "EventBridgeEvent",
    "KafkaRecord",
    "KinesisRecord",
    "Record",
    "RecordHandler",
    "S3Record",
    "SNSRecord",
    "SQSRecord",
    "each_record",
    "records",
]  # PassThrough is the adapter's (dispatch.py), not an import of the app's

logger = logging.getLogger("holdfast")


# -- typed records --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SQSRecord:
    """One SQS message."""

    message_id: str
    body: str
    receipt_handle: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    message_attributes: dict[str, Any] = field(default_factory=dict)
    md5_of_body: str = ""
    event_source_arn: str = ""
    aws_region: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SQSRecord:
        return cls(
            message_id=str(record.get("messageId", "")),
            body=str(record.get("body", "")),
            receipt_handle=str(record.get("receiptHandle", "")),
            attributes=dict(record.get("attributes") or {}),
            message_attributes=dict(record.get("messageAttributes") or {}),
            md5_of_body=str(record.get("md5OfBody", "")),
            event_source_arn=str(record.get("eventSourceARN", "")),
            aws_region=str(record.get("awsRegion", "")),
            raw=record,
        )

    @property
    def item_identifier(self) -> str:
        return self.message_id

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class SNSRecord:
    """One SNS notification."""

    message_id: str
    message: str
    topic_arn: str = ""
    subject: str | None = None
    timestamp: str = ""
    message_attributes: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SNSRecord:
        sns = record.get("Sns") or {}
        return cls(
            message_id=str(sns.get("MessageId", "")),
            message=str(sns.get("Message", "")),
            topic_arn=str(sns.get("TopicArn", "")),
            subject=sns.get("Subject"),
            timestamp=str(sns.get("Timestamp", "")),
            message_attributes=dict(sns.get("MessageAttributes") or {}),
            raw=record,
        )

    def json(self) -> Any:
        return json.loads(self.message)


@dataclass(frozen=True, slots=True)
class S3Record:
    """One S3 event notification; ``key`` is decoded (S3 sends it URL-encoded, spaces as ``+``)."""

    event_name: str
    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None
    event_time: str = ""
    aws_region: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> S3Record:
        s3 = record.get("s3") or {}
        obj = s3.get("object") or {}
        size = obj.get("size")
        return cls(
            event_name=str(record.get("eventName", "")),
            bucket=str((s3.get("bucket") or {}).get("name", "")),
            key=unquote_plus(str(obj.get("key", ""))),
            size=int(size) if size is not None else None,
            etag=obj.get("eTag"),
            version_id=obj.get("versionId"),
            sequencer=obj.get("sequencer"),
            event_time=str(record.get("eventTime", "")),
            aws_region=str(record.get("awsRegion", "")),
            raw=record,
        )


@dataclass(frozen=True, slots=True)
class KinesisRecord:
    """One Kinesis data record; ``data`` is decoded from base64."""

    sequence_number: str
    partition_key: str
    data: bytes
    approximate_arrival_timestamp: float | None = None
    event_id: str = ""
    event_source_arn: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> KinesisRecord:
        kinesis = record.get("kinesis") or {}
        return cls(
            sequence_number=str(kinesis.get("sequenceNumber", "")),
            partition_key=str(kinesis.get("partitionKey", "")),
            data=_b64(kinesis.get("data")) or b"",
            approximate_arrival_timestamp=kinesis.get("approximateArrivalTimestamp"),
            event_id=str(record.get("eventID", "")),
            event_source_arn=str(record.get("eventSourceARN", "")),
            raw=record,
        )

    @property
    def item_identifier(self) -> str:
        return self.sequence_number

    def text(self) -> str:
        return self.data.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True, slots=True)
class DynamoDBRecord:
    """One DynamoDB Streams record; images and keys converted from DynamoDB's attribute-value
    JSON to Python values (numbers as :class:`~decimal.Decimal`, as boto3 does; binary as
    bytes; sets as sets)."""

    event_id: str
    event_name: str
    sequence_number: str
    keys: dict[str, Any] = field(default_factory=dict)
    new_image: dict[str, Any] | None = None
    old_image: dict[str, Any] | None = None
    stream_view_type: str = ""
    event_source_arn: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DynamoDBRecord:
        stream = record.get("dynamodb") or {}
        new, old = stream.get("NewImage"), stream.get("OldImage")
        return cls(
            event_id=str(record.get("eventID", "")),
            event_name=str(record.get("eventName", "")),
            sequence_number=str(stream.get("SequenceNumber", "")),
            keys=_item(stream.get("Keys") or {}),
            new_image=_item(new) if new is not None else None,
            old_image=_item(old) if old is not None else None,
            stream_view_type=str(stream.get("StreamViewType", "")),
            event_source_arn=str(record.get("eventSourceARN", "")),
            raw=record,
        )

    @property
    def item_identifier(self) -> str:
        return self.sequence_number


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One Kafka record (Amazon MSK or self-managed); ``key`` and ``value`` decoded from base64."""

    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None
    timestamp: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> KafkaRecord:
        headers = [
            (str(name), bytes(value))
            for entry in record.get("headers") or ()
            for name, value in dict(entry).items()
        ]
        return cls(
            topic=str(record.get("topic", "")),
            partition=int(record.get("partition", 0)),
            offset=int(record.get("offset", 0)),
            value=_b64(record.get("value")) or b"",
            key=_b64(record.get("key")),
            timestamp=record.get("timestamp"),
            headers=headers,
            raw=record,
        )

    def json(self) -> Any:
        return json.loads(self.value)


@dataclass(frozen=True, slots=True)
class EventBridgeEvent:
    """An EventBridge event (scheduled events included)."""

    id: str
    source: str
    detail_type: str
    detail: Any = None
    time: str = ""
    account: str = ""
    region: str = ""
    resources: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_record(cls, event: dict[str, Any]) -> EventBridgeEvent:
        return cls(
            id=str(event.get("id", "")),
            source=str(event.get("source", "")),
            detail_type=str(event.get("detail-type", "")),
            detail=event.get("detail"),
            time=str(event.get("time", "")),
            account=str(event.get("account", "")),
            region=str(event.get("region", "")),
            resources=list(event.get("resources") or ()),
            raw=event,
        )


Record: TypeAlias = (
    SQSRecord
    | SNSRecord
    | S3Record
    | KinesisRecord
    | DynamoDBRecord
    | KafkaRecord
    | EventBridgeEvent
)
_RECORD_TYPES: dict[str, Callable[[dict[str, Any]], Record]] = {
    "aws:sqs": SQSRecord.from_record,
    "aws:sns": SNSRecord.from_record,
    "aws:s3": S3Record.from_record,
    "aws:kinesis": KinesisRecord.from_record,
    "aws:dynamodb": DynamoDBRecord.from_record,
}


def records(event: Any) -> list[Record]:
    """The typed records of ``event`` (an EventBridge event is one record);
    :class:`~holdfast.errors.InvalidEvent` for a payload of no known record source."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"expected an event object, got {type(event).__name__}")
    if event.get("eventSource") in KAFKA_SOURCES:
        batches = event.get("records") or {}
        return [KafkaRecord.from_record(r) for batch in batches.values() for r in batch]
    if "detail-type" in event and "source" in event:
        return [EventBridgeEvent.from_record(event)]
    raw = event.get("Records")
    if not isinstance(raw, list):
        raise InvalidEvent("the event has no records from a known source")
    typed: list[Record] = []
    for record in raw:
        source = record_source(record) if isinstance(record, dict) else None
        parse = _RECORD_TYPES.get(str(source))
        if parse is None:
            raise InvalidEvent(f"a record from an unknown source: {source!r}")
        typed.append(parse(record))
    return typed


# -- per-record handlers ------------------------------------------------------------------------
RecordHandler: TypeAlias = Callable[[Any, LambdaContext], Any]


def each_record(fn: RecordHandler) -> Callable[[Any, LambdaContext], Awaitable[Any]]:
    """Wrap ``fn(record, context)`` (plain or ``async``) into a handler for a whole event.

    SQS, Kinesis and DynamoDB Streams answer ``{"batchItemFailures": [...]}`` listing the
    records whose call raised (see the module docs for ordering); for other sources the first
    failure fails the invocation, and the answer is ``None``.
    """

    @functools.wraps(fn)
    async def handle(event: Any, context: LambdaContext) -> Any:
        typed = records(event)
        if not typed or not hasattr(typed[0], "item_identifier"):
            for record in typed:
                await call(fn, record, context)
            return None
        return {"batchItemFailures": await _batch(fn, typed, context)}

    return handle


async def _batch(
    fn: RecordHandler, typed: list[Record], context: LambdaContext
) -> list[dict[str, str]]:
    ordered = not isinstance(typed[0], SQSRecord) or _is_fifo(typed[0])
    failures: list[dict[str, str]] = []
    for index, record in enumerate(typed):
        identifier = str(getattr(record, "item_identifier", ""))
        try:
            await call(fn, record, context)
        except Exception:
            logger.exception("record %s failed", identifier)
            failures.append({"itemIdentifier": identifier})
            if ordered:
                if isinstance(record, SQSRecord):  # FIFO: nothing after a failure may pass it
                    failures += [
                        {"itemIdentifier": str(getattr(rest, "item_identifier", ""))}
                        for rest in typed[index + 1 :]
                    ]
                break  # streams resume from the lowest failed sequence number
    return failures


def _is_fifo(record: SQSRecord) -> bool:
    return record.event_source_arn.endswith(".fifo")


# -- pass-through ---------------------------------------------------------------------------------
class PassThrough(EventCodec):
    """The codec of events no handler claims: ``POST {path}`` with the raw event as JSON.

    As LWA does: the request carries ``Content-Type: application/json``; the answer is the
    response body parsed as JSON, or ``None`` when it is empty, binary or not JSON. The status is
    not part of the answer (``error_status_codes`` still turn it into a function error), with one
    exception where LWA loses events: an app with no route there (404 or 405) makes the invocation
    fail with :class:`~holdfast.errors.InvalidEvent`, so an SQS batch is retried instead of
    counting as processed. One instance serves one invocation.
    """

    name = "pass_through"
    source = "pass-through"
    #: Lambda's limit on a synchronous invocation's response payload.
    max_response_bytes = LAMBDA_RESPONSE_LIMIT

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._event: Any = None

    def _decode(self, event: Any, base_path: str, context: LambdaContext) -> HTTPRequest:
        self._event = event
        # A payload that was not JSON reaches the runtime as bytes: it is sent as it came.
        if isinstance(event, bytes):
            body = event
        else:
            body = json.dumps(event, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        # The invocation context (and tenant) headers, as on HTTP events.
        headers += platform_headers({}, context)
        return HTTPRequest(
            method="POST",
            scheme="http",
            server=None,
            client=None,
            root_path="",
            path=self.path,
            raw_path=self.path.encode(),
            query_string=b"",
            headers=headers,
            body=body,
        )

    def encode(self, response: HTTPResponse) -> Any:
        if response.status in (404, 405):
            from holdfast.dispatch import describe

            raise InvalidEvent(
                f"{describe(self._event)}; no handler is registered for it (Adapter.on) and the"
                f" app has no route for it at POST {self.path} (it answered {response.status})"
            )
        if response.status >= 400:
            logger.warning(
                "the app answered the pass-through POST %s with status %d: the answer counts as a"
                " success unless the status is one of the error status codes",
                self.path,
                response.status,
            )
        if not response.body:
            return None
        try:
            return json.loads(response.body.decode("utf-8"))
        except ValueError:
            return None

    def too_large(self, result: Any) -> bool:
        # json.dumps escapes to ASCII: its length is the byte count.
        return len(json.dumps(result)) > self.max_response_bytes


# -- helpers ---------------------------------------------------------------------------------
def _b64(value: Any) -> bytes | None:
    if value is None:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError:
        raise InvalidEvent("a record's data is not valid base64") from None


def _item(attributes: dict[str, Any]) -> dict[str, Any]:
    return {name: _value(value) for name, value in attributes.items()}


def _value(attribute: dict[str, Any]) -> Any:
    """A DynamoDB attribute value (``{"S": "x"}``, ``{"N": "1"}``, ...) as a Python value."""
    from decimal import Decimal  # here, not at import: decimal costs cold-start time

    if not isinstance(attribute, dict) or len(attribute) != 1:
        raise InvalidEvent(f"not a DynamoDB attribute value: {attribute!r}")
    [(kind, value)] = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        return Decimal(value)
    if kind == "B":
        return base64.b64decode(value)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "M":
        return _item(value)
    if kind == "L":
        return [_value(item) for item in value]
    if kind == "SS":
        return set(value)
    if kind == "NS":
        return {Decimal(number) for number in value}
    if kind == "BS":
        return {base64.b64decode(item) for item in value}
    raise InvalidEvent(f"unknown DynamoDB attribute type {kind!r}")
