"""Event codecs: pure functions between a Lambda HTTP event and an ASGI request / response.

:meth:`Codecs.match` picks the codec from an HTTP event's shape (``holdfast.dispatch`` names
every other kind of event); codecs do no I/O.
"""

from __future__ import annotations

from typing import Any, Protocol

from holdfast._types import LambdaContext, LambdaEvent
from holdfast.sources._http import HTTPRequest, HTTPResponse
from holdfast.sources.alb import ALB
from holdfast.sources.apigw_v1 import APIGatewayV1
from holdfast.sources.apigw_v2 import APIGatewayV2
from holdfast.sources.azure import AzureHTTP
from holdfast.sources.lattice import VPCLattice

__all__ = ["Codecs", "EventCodec", "HTTPRequest", "HTTPResponse"]


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
        self.azure_http = AzureHTTP(text_mime_types)

    def match(self, event: LambdaEvent) -> EventCodec | None:
        """The codec for an HTTP event of any supported source, else ``None``."""
        if APIGatewayV2.matches(event):
            return self.apigw_v2
        if ALB.matches(event):
            return self.alb_multi if ALB.is_multi_value(event) else self.alb_single
        if APIGatewayV1.matches(event):
            return self.apigw_v1
        version = VPCLattice.detect_version(event)
        if version is not None:
            return self.lattice_v1 if version == 1 else self.lattice_v2
        if AzureHTTP.matches(event):
            return self.azure_http
        return None
