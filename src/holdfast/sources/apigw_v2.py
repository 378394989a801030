"""API Gateway HTTP API (payload format 2.0) and Lambda Function URLs."""

from __future__ import annotations

from typing import Any

from holdfast._types import LambdaEvent
from holdfast.errors import InvalidEvent
from holdfast.sources._http import (
    HTTPRequest,
    HTTPResponse,
    build_request,
    cookie_header,
    encode_body,
    header_text,
    headers_from_single,
    request_body,
    require,
    split_path,
)

_SOURCE = "HTTP API v2"


class APIGatewayV2:
    """Payload 2.0: comma-joined headers, a ``cookies`` array, ``rawQueryString`` as sent."""

    name = "apigw_v2"

    def __init__(self, text_mime_types: frozenset[str] = frozenset()) -> None:
        self.text_mime_types = text_mime_types

    @staticmethod
    def matches(event: LambdaEvent) -> bool:
        context = event.get("requestContext")
        return event.get("version") == "2.0" and isinstance(context, dict) and "http" in context

    def decode(self, event: LambdaEvent, base_path: str) -> HTTPRequest:
        context = require(event, "requestContext", dict, _SOURCE)
        http = require(context, "http", dict, _SOURCE)
        method = require(http, "method", str, _SOURCE)
        headers = headers_from_single(event.get("headers"))
        cookies = event.get("cookies")
        if cookies:
            if not isinstance(cookies, list):
                raise InvalidEvent(f"{_SOURCE} event: 'cookies' must be a list of strings")
            headers.append(cookie_header(cookies))
        # Function URLs keep the path percent-encoded as sent; HTTP APIs decode it first.
        encoded = ".lambda-url." in str(context.get("domainName", ""))
        raw_path = event.get("rawPath") or http.get("path") or "/"
        # A named HTTP API stage stands at the front of rawPath: the app is mounted below it.
        stage = context.get("stage")
        mount = f"/{stage}" if stage and stage != "$default" else ""
        path = split_path(str(raw_path), encoded=encoded, mount=mount, base_path=base_path)
        query = event.get("rawQueryString") or ""
        return build_request(
            method,
            headers,
            path,
            query.encode("utf-8"),
            request_body(event, "body", "isBase64Encoded"),
            source_ip=http.get("sourceIp"),
        )

    def encode(self, response: HTTPResponse) -> dict[str, Any]:
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for key, value in response.headers:
            name = key.decode("latin-1")
            text = header_text(value)
            if name == "set-cookie":
                cookies.append(text)
            elif name in headers:
                headers[name] = f"{headers[name]},{text}"
            else:
                headers[name] = text
        body, is_base64 = encode_body(response.body, response.headers, self.text_mime_types)
        result: dict[str, Any] = {
            "statusCode": response.status,
            "headers": headers,
            "body": body,
            "isBase64Encoded": is_base64,
        }
        if cookies:
            result["cookies"] = cookies
        return result
