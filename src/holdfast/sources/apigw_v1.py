"""API Gateway REST API (payload format 1.0), and HTTP APIs set to payload format 1.0."""

from __future__ import annotations

from typing import Any

from holdfast._types import LambdaEvent
from holdfast.sources._http import (
    HTTPRequest,
    HTTPResponse,
    build_request,
    encode_body,
    grouped_headers,
    headers_from_multi,
    headers_from_single,
    query_from_decoded,
    request_body,
    require,
    split_path,
)

_SOURCE = "REST API v1"


class APIGatewayV1:
    """Payload 1.0: single and multi-value headers and query parameters, stage outside ``path``."""

    name = "apigw_v1"

    def __init__(self, text_mime_types: frozenset[str] = frozenset()) -> None:
        self.text_mime_types = text_mime_types

    @staticmethod
    def matches(event: LambdaEvent) -> bool:
        context = event.get("requestContext")
        return (
            "httpMethod" in event
            and isinstance(context, dict)
            and "elb" not in context
            and event.get("version", "1.0") == "1.0"
        )

    def decode(self, event: LambdaEvent, base_path: str) -> HTTPRequest:
        context = require(event, "requestContext", dict, _SOURCE)
        method = require(event, "httpMethod", str, _SOURCE)
        multi = event.get("multiValueHeaders")
        headers = headers_from_multi(multi) if multi else headers_from_single(event.get("headers"))
        full_path, mount = _full_path(event, context)
        path = split_path(full_path, encoded=_encodes_path(event), mount=mount, base_path=base_path)
        params = event.get("multiValueQueryStringParameters") or event.get("queryStringParameters")
        identity = context.get("identity") or {}
        return build_request(
            method,
            headers,
            path,
            query_from_decoded(params),
            request_body(event, "body", "isBase64Encoded"),
            source_ip=identity.get("sourceIp"),
        )

    def encode(self, response: HTTPResponse) -> dict[str, Any]:
        grouped = grouped_headers(response.headers)
        body, is_base64 = encode_body(response.body, response.headers, self.text_mime_types)
        return {
            "statusCode": response.status,
            "headers": {name: values[-1] for name, values in grouped.items()},
            "multiValueHeaders": grouped,
            "body": body,
            "isBase64Encoded": is_base64,
        }


def _encodes_path(event: LambdaEvent) -> bool:
    # REST APIs pass the path percent-encoded as sent; HTTP APIs (even at payload 1.0) decode it.
    return "version" not in event


def _full_path(event: LambdaEvent, context: dict[str, Any]) -> tuple[str, str]:
    """``(full path, mount)``: REST keeps the stage (or base path mapping) out of ``path`` and
    puts the path the client asked for in ``requestContext.path``."""
    path = str(event.get("path") or "/")
    requested = context.get("path")
    if not isinstance(requested, str) or requested == path:
        return path, ""
    if path == "/":
        mount = requested.rstrip("/")
        return f"{mount}/", mount
    if requested.endswith(path):
        return requested, requested[: -len(path)]
    return path, ""
