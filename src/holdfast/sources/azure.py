"""Azure Functions HTTP triggers.

Azure sends no Lambda-shaped event: ``holdfast.azure`` turns the worker's request object
(``azure.functions.HttpRequest``, or the FastAPI request of the HTTP streaming extension)
into the small event below and hands it to the ordinary ``Adapter.begin``, so a request on
Azure takes the one path every Lambda source takes (decode, exchange, outcome, drain)::

    {"holdfast.azure": "http", "method": "GET", "url": "https://host/api/items?x=1",
     "headers": [["accept", "*/*"], ...], "body": b"...", "routePrefix": "api",
     "invocationId": "<the worker's invocation id>"}

The URL is the one the client sent (percent-encoded path and query). ``routePrefix`` is the
host's ``extensions.http.routePrefix`` (``api`` by default): as uvicorn does with a mount, the
app sees the full path with ``root_path`` ``/api``.

No platform context header is added: the Lambda ones (``x-amzn-*``) would be invented on
Azure, and Azure's own request headers (``x-ms-*``, ``x-arr-*``, ``client-ip``) are whatever
the client sent unless a platform feature (Easy Auth) rewrote them, so they reach the app as
headers and are never read as context. Client copies of the Lambda context headers are dropped
as on Lambda. The trusted context is the worker's own ``azure.functions.Context`` in
``scope["azure.context"]``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from holdfast._types import LambdaContext, LambdaEvent, RawHeaders
from holdfast.sources.codec import EventCodec
from holdfast.sources.fields import method_of, optional, require, wrong_type
from holdfast.sources.headers import header_name, header_value
from holdfast.sources.messages import HTTPRequest, HTTPResponse
from holdfast.sources.paths import split_path
from holdfast.sources.query import as_sent
from holdfast.sources.request import build_request

_SOURCE = "Azure Functions HTTP"
#: The marker of an event built by ``holdfast.azure`` (Azure itself never sends one).
MARKER = "holdfast.azure"
#: A buffered response crosses the worker's gRPC channel to the host in one message; the
#: worker allows messages up to 2 GiB - 1. Azure documents no other response limit.
AZURE_RESPONSE_LIMIT = 2**31 - 1


class AzureHTTP(EventCodec):
    """The event ``holdfast.azure`` builds from an Azure Functions HTTP request."""

    name = "azure_http"
    source = _SOURCE
    max_response_bytes = AZURE_RESPONSE_LIMIT

    @staticmethod
    def matches(event: LambdaEvent) -> bool:
        return event.get(MARKER) == "http"

    def _decode(self, event: LambdaEvent, base_path: str, context: LambdaContext) -> HTTPRequest:
        method = method_of(require(event, "method", str, _SOURCE), _SOURCE)
        url = urlsplit(require(event, "url", str, _SOURCE))
        prefix = (optional(event, "routePrefix", str, _SOURCE) or "").strip("/")
        path = split_path(
            url.path or "/",
            encoded=True,
            mount=f"/{prefix}" if prefix else "",
            base_path=base_path,
        )
        body = event.get("body") or b""
        if not isinstance(body, bytes):
            raise wrong_type(f"{_SOURCE} event: 'body'", "bytes", body)
        return build_request(
            method,
            _headers(event.get("headers")),
            path,
            as_sent(url.query),
            body,
            platform=None,
            wsgi=self.wsgi,
            default_scheme=url.scheme or "https",
        )

    def encode(self, response: HTTPResponse) -> dict[str, Any]:
        return {
            "status": response.status,
            "headers": [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in response.headers
            ],
            "body": response.body,
        }

    def too_large(self, result: dict[str, Any]) -> bool:
        return len(result["body"]) > self.max_response_bytes


def _headers(headers: Any) -> RawHeaders:
    if headers is None:
        return []
    if not isinstance(headers, list):
        raise wrong_type(f"{_SOURCE} event: 'headers'", "a list of [name, value] pairs", headers)
    raw: RawHeaders = []
    for pair in headers:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise wrong_type(f"{_SOURCE} event: a header", "a [name, value] pair", pair)
        name, value = pair
        if not isinstance(name, str) or not isinstance(value, str):
            raise wrong_type(f"{_SOURCE} event: a header", "two strings", pair)
        raw.append((header_name(name), header_value(value)))
    return raw
