"""Application Load Balancer target groups, in single-value or multi-value-headers mode."""

from __future__ import annotations

from typing import Any

from holdfast._types import LambdaContext, LambdaEvent
from holdfast.sources.bodies import encode_body, request_body
from holdfast.sources.codec import EventCodec
from holdfast.sources.fields import method_of, optional_text, require
from holdfast.sources.headers import headers_from_single, merged_headers
from holdfast.sources.limits import ALB_RESPONSE_LIMIT
from holdfast.sources.messages import HTTPRequest, HTTPResponse
from holdfast.sources.paths import split_path
from holdfast.sources.query import merged_params, query_from_encoded
from holdfast.sources.request import build_request
from holdfast.sources.response_headers import (
    grouped_headers,
    single_value_headers,
    status_description,
)

_SOURCE = "ALB"


class ALB(EventCodec):
    """ALB answers in the mode the request came in: with ``lambda.multi_value_headers.enabled``
    both requests and responses use ``multiValueHeaders``; otherwise single values only."""

    name = "alb"
    source = _SOURCE
    #: "The maximum size of the response JSON that the Lambda function can send is 1 MB."
    max_response_bytes = ALB_RESPONSE_LIMIT

    def __init__(
        self,
        text_mime_types: frozenset[str] = frozenset(),
        *,
        multi_value: bool,
        wsgi: bool,
        context_headers: bool = False,
    ) -> None:
        super().__init__(text_mime_types, wsgi=wsgi, context_headers=context_headers)
        self.multi_value = multi_value

    @staticmethod
    def matches(event: LambdaEvent) -> bool:
        context = event.get("requestContext")
        return isinstance(context, dict) and "elb" in context

    @staticmethod
    def is_multi_value(event: LambdaEvent) -> bool:
        return "multiValueHeaders" in event

    def _decode(self, event: LambdaEvent, base_path: str, context: LambdaContext) -> HTTPRequest:
        method = method_of(require(event, "httpMethod", str, _SOURCE), _SOURCE)
        single_headers = event.get("headers")
        params: Any = event.get("queryStringParameters")
        if self.multi_value:
            # ALB sends only the multi-value forms in this mode; keep what a hand-made event
            # put in the single-value ones instead of losing it.
            headers = merged_headers(single_headers, event.get("multiValueHeaders"))
            params = merged_params(params, event.get("multiValueQueryStringParameters"))
        else:
            headers = headers_from_single(single_headers)
        path = split_path(
            optional_text(event, "path", _SOURCE) or "/", encoded=True, base_path=base_path
        )
        return build_request(
            method,
            headers,
            path,
            # ALB passes query parameters URL-encoded as the client sent them.
            query_from_encoded(params),
            request_body(event, "body", "isBase64Encoded"),
            platform=self.platform(event, context),
            wsgi=self.wsgi,
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
