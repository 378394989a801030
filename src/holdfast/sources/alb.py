"""Application Load Balancer target groups, in single-value or multi-value-headers mode."""

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
    query_from_encoded,
    request_body,
    require,
    single_value_headers,
    split_path,
    status_description,
)

_SOURCE = "ALB"


class ALB:
    """ALB answers in the mode the request came in: with ``lambda.multi_value_headers.enabled``
    both requests and responses use ``multiValueHeaders``; otherwise single values only."""

    name = "alb"

    def __init__(self, text_mime_types: frozenset[str] = frozenset(), *, multi_value: bool) -> None:
        self.text_mime_types = text_mime_types
        self.multi_value = multi_value

    @staticmethod
    def matches(event: LambdaEvent) -> bool:
        context = event.get("requestContext")
        return isinstance(context, dict) and "elb" in context

    @staticmethod
    def is_multi_value(event: LambdaEvent) -> bool:
        return "multiValueHeaders" in event

    def decode(self, event: LambdaEvent, base_path: str) -> HTTPRequest:
        method = require(event, "httpMethod", str, _SOURCE)
        if self.multi_value:
            headers = headers_from_multi(event.get("multiValueHeaders"))
            params = event.get("multiValueQueryStringParameters")
        else:
            headers = headers_from_single(event.get("headers"))
            params = event.get("queryStringParameters")
        path = split_path(str(event.get("path") or "/"), encoded=True, base_path=base_path)
        return build_request(
            method,
            headers,
            path,
            # ALB passes query parameters URL-encoded as the client sent them.
            query_from_encoded(params),
            request_body(event, "body", "isBase64Encoded"),
            default_scheme="http",
        )

    def encode(self, response: HTTPResponse) -> dict[str, Any]:
        grouped = grouped_headers(response.headers)
        body, is_base64 = encode_body(response.body, response.headers, self.text_mime_types)
        result: dict[str, Any] = {
            "statusCode": response.status,
            "statusDescription": status_description(response.status),
            "body": body,
            "isBase64Encoded": is_base64,
        }
        if self.multi_value:
            result["multiValueHeaders"] = grouped
        else:
            result["headers"] = single_value_headers(grouped)
        return result
