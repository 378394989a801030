"""What kind of event an invocation carries: the one place holdfast names it.

Every host hands the event to :meth:`holdfast.Adapter.begin`, which asks :func:`dispatch` once:

* ``http`` — an HTTP request from API Gateway (REST, HTTP API), a Function URL, ALB or VPC
  Lattice, with the codec that decodes it and encodes the answer;
* ``holdfast.tasks`` — an SQS batch of holdfast task messages (``holdfast.tasks`` consumes it);
* ``holdfast.schedule`` — a schedule for holdfast's periodic tasks;
* ``warmer`` — a keep-warm ping (``{"warmer": true}``, ``{"warmup": ...}``, or the
  ``serverless-plugin-warmup`` source), answered without running the app;
* another source by name: ``sqs``, ``sns``, ``s3``, ``eventbridge``, ``schedule`` (an EventBridge
  scheduled event nothing in holdfast claims), ``dynamodb``, ``kinesis``, ``kafka``, else
  ``custom`` (any other payload, including one that is not a JSON object).

The task queue plugs in through :func:`claim` (``holdfast.tasks`` registers its two kinds when
it is imported): the core never imports it, HTTP events pay nothing for it, and the core needs
only the standard library.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from holdfast.sources import Codecs, EventCodec

__all__ = [
    "HTTP",
    "KAFKA_SOURCES",
    "OTHER_SOURCES",
    "TASK_MESSAGES",
    "TASK_SCHEDULE",
    "WARMER",
    "EventHandler",
    "EventKind",
    "call",
    "claim",
    "describe",
    "dispatch",
    "record_source",
    "source_name",
]

HTTP: Final = "http"
TASK_MESSAGES: Final = "holdfast.tasks"
TASK_SCHEDULE: Final = "holdfast.schedule"
WARMER: Final = "warmer"
#: The names of the event sources holdfast does not handle itself (``Adapter.on`` can).
OTHER_SOURCES: Final = (
    "sqs",
    "sns",
    "s3",
    "eventbridge",
    "schedule",
    "dynamodb",
    "kinesis",
    "kafka",
    "custom",
)

# Records[0]["eventSource"] (SNS spells it "EventSource") → the source's name.
_RECORD_SOURCES: Final = {
    "aws:sqs": "sqs",
    "aws:sns": "sns",
    "aws:s3": "s3",
    "aws:dynamodb": "dynamodb",
    "aws:kinesis": "kinesis",
}
KAFKA_SOURCES: Final = frozenset({"aws:kafka", "SelfManagedKafka"})


#: ``handler(event, context)`` for a kind of non-HTTP event; may be ``async``.
EventHandler = Callable[[Any, Any], Any]


class EventKind(NamedTuple):
    """An event's kind: ``name`` (see the module docs); for ``http``, its ``codec``; for a kind
    a component claimed (:func:`claim`), the ``handler`` that answers it unless the app
    registered its own."""

    name: str
    codec: EventCodec | None = None
    handler: EventHandler | None = None

    @property
    def is_http(self) -> bool:
        return self.codec is not None


_WARMER = EventKind(WARMER)
_OTHER = {name: EventKind(name) for name in OTHER_SOURCES}


def dispatch(event: Any, codecs: Codecs) -> EventKind:
    """Name the kind of ``event`` (HTTP events first: they are the common case)."""
    if type(event) is not dict:
        return _OTHER["custom"]
    codec = codecs.match(event)
    if codec is not None:
        return EventKind(HTTP, codec)
    source = source_name(event)
    for sources, accepts, kind in _claims:
        if source in sources and accepts(event):
            return kind
    if source == "custom" and _is_warmer(event):
        return _WARMER
    return _OTHER[source]


_claims: list[tuple[frozenset[str], Callable[[Any], bool], EventKind]] = []


def claim(
    name: str, sources: tuple[str, ...], accepts: Callable[[Any], bool], handler: EventHandler
) -> None:
    """Name the events of ``sources`` that ``accepts(event)`` holds for ``name``, answered by
    ``handler`` (the registration hook through which ``holdfast.tasks`` plugs in its kinds).

    Claims are asked in the order made, after the HTTP codecs and before the warmer check;
    ``accepts`` must be cheap and never raise. Claiming a name again replaces its claim.
    """
    _claims[:] = [entry for entry in _claims if entry[2].name != name]
    _claims.append((frozenset(sources), accepts, EventKind(name, handler=handler)))


def record_source(record: dict[str, Any]) -> Any:
    """A record's ``eventSource`` (SNS spells it ``EventSource``)."""
    return record.get("eventSource") or record.get("EventSource")


async def call(handler: Callable[[Any, Any], Any], event: Any, context: Any) -> Any:
    """``handler(event, context)``, awaited when it returns an awaitable (async handlers)."""
    result = handler(event, context)
    if inspect.isawaitable(result):
        result = await result
    return result


def source_name(event: dict[str, Any]) -> str:
    """The name of a non-HTTP event's source, from its documented shape."""
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        return _RECORD_SOURCES.get(str(record_source(records[0])), "custom")
    if event.get("eventSource") in KAFKA_SOURCES:
        return "kafka"
    if "detail-type" in event and "source" in event:
        scheduled = event.get("source") == "aws.events" and (
            event.get("detail-type") == "Scheduled Event"
        )
        return "schedule" if scheduled else "eventbridge"
    return "custom"


def describe(event: Any) -> str:
    """Why ``event`` is not an HTTP event (the message of the :class:`InvalidEvent` an adapter
    with no handler for its kind raises)."""
    if not isinstance(event, dict):
        return f"a Lambda HTTP event is a JSON object, got {type(event).__name__}"
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        source = record_source(records[0]) or "unknown"
        return f"not an HTTP event: records from {source}"
    if "detail-type" in event:
        return f"not an HTTP event: an EventBridge {event.get('detail-type')!r} event"
    keys = ", ".join(sorted(map(str, event))[:8]) or "no keys"
    return (
        "not an HTTP event from API Gateway (REST or HTTP API), a Function URL, ALB or "
        f"VPC Lattice: found {keys}"
    )


def _is_warmer(event: dict[str, Any]) -> bool:
    return (
        bool(event.get("warmer"))
        or bool(event.get("warmup"))
        or event.get("source") == "serverless-plugin-warmup"
    )
