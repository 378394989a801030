"""Event codecs: pure functions between a Lambda HTTP event and an ASGI request / response.

:meth:`Codecs.match` picks the codec from an HTTP event's shape (``holdfast.dispatch`` names
every other kind of event); codecs do no I/O. One module per source (``apigw_v1``,
``apigw_v2``, ``alb``, ``lattice``) and one per concept they share: the records
(``messages``), the codec base class (``codec``), reading the event's fields (``fields``),
request headers (``headers``), paths, query strings and bodies (``paths``, ``query``,
``bodies``), what HTTP lets through a field (``syntax``), the request a proxy would build
(``request``, ``addresses``), the platform context headers (``platform``), response heads
(``response_headers``) and size limits (``limits``).
"""

from __future__ import annotations

from holdfast._types import LambdaEvent
from holdfast.sources.alb import ALB
from holdfast.sources.apigw_v1 import APIGatewayV1
from holdfast.sources.apigw_v2 import APIGatewayV2
from holdfast.sources.azure import AzureHTTP
from holdfast.sources.codec import EventCodec
from holdfast.sources.lattice import VPCLattice
from holdfast.sources.messages import HTTPRequest, HTTPResponse
from holdfast.sources.syntax import BadRequest

__all__ = ["BadRequest", "Codecs", "EventCodec", "HTTPRequest", "HTTPResponse"]


class Codecs:
    """One instance of every codec, configured once per adapter (``wsgi`` and
    ``context_headers``: see :class:`~holdfast.sources.codec.EventCodec`)."""

    def __init__(
        self,
        text_mime_types: frozenset[str] = frozenset(),
        *,
        wsgi: bool = False,
        context_headers: bool = False,
    ):
        shared = {"wsgi": wsgi, "context_headers": context_headers}
        self.apigw_v2 = APIGatewayV2(text_mime_types, **shared)
        self.apigw_v1 = APIGatewayV1(text_mime_types, **shared)
        self.alb_single = ALB(text_mime_types, multi_value=False, **shared)
        self.alb_multi = ALB(text_mime_types, multi_value=True, **shared)
        self.lattice_v1 = VPCLattice(text_mime_types, version=1, **shared)
        self.lattice_v2 = VPCLattice(text_mime_types, version=2, **shared)
        self.azure_http = AzureHTTP(text_mime_types, **shared)

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
