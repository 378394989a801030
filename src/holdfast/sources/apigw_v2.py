"""API Gateway HTTP API (payload format 2.0) and Lambda Function URLs."""

from __future__ import annotations

from typing import Any

from holdfast._types import LambdaContext, LambdaEvent
from holdfast.sources.bodies import encode_body, request_body
from holdfast.sources.codec import EventCodec
from holdfast.sources.fields import METHODS, method_of, optional_text, require, wrong_type
from holdfast.sources.headers import header_value, headers_from_single, known_headers, plain_names
from holdfast.sources.limits import LAMBDA_RESPONSE_LIMIT
from holdfast.sources.messages import HTTPRequest, HTTPResponse
from holdfast.sources.paths import split_path
from holdfast.sources.query import VISIBLE_ASCII, as_sent
from holdfast.sources.request import build_request, plain_request
from holdfast.sources.response_headers import header_text

_SOURCE = "HTTP API v2"


class APIGatewayV2(EventCodec):
    """Payload 2.0: comma-joined headers, a ``cookies`` array, ``rawQueryString`` as sent."""

    name = "apigw_v2"
    source = _SOURCE
    #: Lambda's limit; API Gateway and Function URLs accept more than Lambda returns.
    max_response_bytes = LAMBDA_RESPONSE_LIMIT

    @staticmethod
    def plain(event: LambdaEvent, base_path: str) -> HTTPRequest | None:
        """The request of an event as the fronts send it, read in one pass
        (:func:`~holdfast.sources.request.plain_request`); ``None`` for any other event, whatever
        is unusual in it, and never an exception: ``_decode`` then decides."""
        request_context = event.get("requestContext")
        if type(request_context) is not dict:
            return None
        http = request_context.get("http")
        if type(http) is not dict:
            return None
        method = http.get("method")
        headers = event.get("headers")
        if type(method) is not str or type(headers) is not dict:
            return None
        method = METHODS.get(method)
        raw = known_headers(headers, plain_names)  # None: a new name, a null, not latin-1
        if raw is None:
            return None
        cookies = event.get("cookies")
        if cookies:  # as _decode reads them: any other false value is no cookie
            if type(cookies) is not list:
                return None
            try:
                raw.append((b"cookie", "; ".join(cookies).encode("latin-1")))
            except (TypeError, UnicodeEncodeError):  # not all str, not latin-1
                return None
        stage = request_context.get("stage")
        domain = request_context.get("domainName")
        path = event.get("rawPath")
        query = event.get("rawQueryString")
        source_ip = http.get("sourceIp")
        if (
            method is None
            or (stage is not None and stage != "$default")
            or (domain is not None and type(domain) is not str)
            or type(path) is not str
            or type(query) is not str
            or type(source_ip) is not str
            or not VISIBLE_ASCII.fullmatch(query)
        ):
            return None
        return plain_request(
            method, raw, path, "", base_path, query.encode("ascii"), event, source_ip
        )

    @staticmethod
    def matches(event: LambdaEvent) -> bool:
        context = event.get("requestContext")
        return event.get("version") == "2.0" and isinstance(context, dict) and "http" in context

    def _decode(self, event: LambdaEvent, base_path: str, context: LambdaContext) -> HTTPRequest:
        """Every event, field by field: the reference for :meth:`plain`."""
        # Every field is checked; the common types are tested inline (the helpers' calls cost
        # more than the rest of this method) and the helpers only word the refusal.
        request_context = event.get("requestContext")
        if type(request_context) is not dict:
            request_context = require(event, "requestContext", dict, _SOURCE)
        http = request_context.get("http")
        if type(http) is not dict:
            http = require(request_context, "http", dict, _SOURCE)
        method = http.get("method")
        if type(method) is not str:
            method = require(http, "method", str, _SOURCE)
        method = method_of(method, _SOURCE)
        headers = headers_from_single(event.get("headers"))
        cookies = event.get("cookies")
        if cookies:
            _add_cookies(headers, cookies)
        # Function URLs keep the path percent-encoded as sent; HTTP APIs decode it first.
        domain = optional_text(request_context, "domainName", _SOURCE) or ""
        raw_path = (
            optional_text(event, "rawPath", _SOURCE) or optional_text(http, "path", _SOURCE) or "/"
        )
        # A named HTTP API stage stands at the front of rawPath: the app is mounted below it.
        stage = optional_text(request_context, "stage", _SOURCE)
        mount = f"/{stage}" if stage and stage != "$default" else ""
        path = split_path(
            raw_path, encoded=".lambda-url." in domain, mount=mount, base_path=base_path
        )
        query = optional_text(event, "rawQueryString", _SOURCE) or ""
        return build_request(
            method,
            headers,
            path,
            as_sent(query),
            request_body(event, "body", "isBase64Encoded"),
            platform=self.platform(event, context),
            wsgi=self.wsgi,
            source_ip=optional_text(http, "sourceIp", _SOURCE),
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


def _add_cookies(headers: list[tuple[bytes, bytes]], cookies: Any) -> None:
    """One ``cookie`` header from the ``cookies`` array and any ``cookie`` header.

    API Gateway moves every Cookie header into ``cookies`` (so the two never meet in a real
    event); a hand-made event with both still gives the app a single header, as HTTP/1.1 does.
    """
    if type(cookies) is not list:
        raise wrong_type(f"{_SOURCE} event: 'cookies'", "a list of strings", cookies)
    values = [value for name, value in headers if name == b"cookie"]
    if values:
        headers[:] = [(name, value) for name, value in headers if name != b"cookie"]
    for cookie in cookies:
        if type(cookie) is not str:
            raise wrong_type(f"{_SOURCE} event: 'cookies'", "a list of strings", cookies)
        values.append(header_value(cookie))
    headers.append((b"cookie", b"; ".join(values)))
