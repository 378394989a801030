"""Event codecs: pure functions between a Lambda HTTP event and an ASGI request / response.

:meth:`Codecs.detect` picks the codec from the event's shape; codecs do no I/O.
"""

from __future__ import annotations

from typing import Any, Protocol

from holdfast._types import LambdaContext, LambdaEvent
from holdfast.errors import InvalidEvent
from holdfast.sources._http import HTTPRequest, HTTPResponse
from holdfast.sources.alb import ALB
from holdfast.sources.apigw_v1 import APIGatewayV1
from holdfast.sources.apigw_v2 import APIGatewayV2
from holdfast.sources.lattice import VPCLattice

__all__ = ["Codecs", "EventCodec", "HTTPRequest", "HTTPResponse", "detect"]


class EventCodec(Protocol):
    name: str
    #: The largest serialised response the source accepts (Lambda's 6 MB, ALB's 1 MB).
    max_response_bytes: int

    def decode(
        self, event: LambdaEvent, base_path: str, context: LambdaContext = None
    ) -> HTTPRequest: ...

    def encode(self, response: HTTPResponse) -> dict[str, Any]: ...

    def too_large(self, result: dict[str, Any]) -> bool: ...


class Codecs:
    """One instance of every codec, configured once per adapter."""

    def __init__(self, text_mime_types: frozenset[str] = frozenset()) -> None:
        self.apigw_v2 = APIGatewayV2(text_mime_types)
        self.apigw_v1 = APIGatewayV1(text_mime_types)
        self.alb_single = ALB(text_mime_types, multi_value=False)
        self.alb_multi = ALB(text_mime_types, multi_value=True)
        self.lattice_v1 = VPCLattice(text_mime_types, version=1)
        self.lattice_v2 = VPCLattice(text_mime_types, version=2)

    def detect(self, event: Any) -> EventCodec:
        """The codec for ``event``, or :class:`InvalidEvent` saying why there is none."""
        if not isinstance(event, dict):
            raise InvalidEvent(f"a Lambda HTTP event is a JSON object, got {type(event).__name__}")
        if APIGatewayV2.matches(event):
            return self.apigw_v2
        if ALB.matches(event):
            return self.alb_multi if ALB.is_multi_value(event) else self.alb_single
        if APIGatewayV1.matches(event):
            return self.apigw_v1
        version = VPCLattice.detect_version(event)
        if version is not None:
            return self.lattice_v1 if version == 1 else self.lattice_v2
        raise InvalidEvent(_describe_unknown(event))


def _describe_unknown(event: LambdaEvent) -> str:
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        source = records[0].get("eventSource") or records[0].get("EventSource") or "unknown"
        return f"not an HTTP event: records from {source}"
    if "detail-type" in event:
        return f"not an HTTP event: an EventBridge {event.get('detail-type')!r} event"
    keys = ", ".join(sorted(map(str, event))[:8]) or "no keys"
    return (
        "not an HTTP event from API Gateway (REST or HTTP API), a Function URL, ALB or "
        f"VPC Lattice: found {keys}"
    )
