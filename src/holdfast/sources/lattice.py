"""Amazon VPC Lattice target groups, event structure versions 1 and 2."""

from __future__ import annotations

from typing import Any

from holdfast._types import LambdaContext, LambdaEvent
from holdfast.sources.bodies import encode_body, request_body
from holdfast.sources.codec import EventCodec
from holdfast.sources.fields import method_of, require
from holdfast.sources.headers import headers_from_multi
from holdfast.sources.limits import LAMBDA_RESPONSE_LIMIT
from holdfast.sources.messages import HTTPRequest, HTTPResponse
from holdfast.sources.paths import split_path
from holdfast.sources.query import as_sent, query_from_decoded
from holdfast.sources.request import build_request
from holdfast.sources.response_headers import (
    grouped_headers,
    single_value_headers,
    status_description,
)


class VPCLattice(EventCodec):
    """Version 1 uses snake_case keys and ``raw_path``; version 2 camelCase, a ``requestContext``
    and list-valued headers and query parameters. Both answer ALB-style single-value headers."""

    name = "lattice"
    max_response_bytes = LAMBDA_RESPONSE_LIMIT

    def __init__(
        self,
        text_mime_types: frozenset[str] = frozenset(),
        *,
        version: int,
        wsgi: bool,
        context_headers: bool = False,
    ) -> None:
        super().__init__(text_mime_types, wsgi=wsgi, context_headers=context_headers)
        self.version = version
        self.source = f"VPC Lattice v{version}"

    @staticmethod
    def detect_version(event: LambdaEvent) -> int | None:
        if "raw_path" in event and "method" in event:
            return 1
        context = event.get("requestContext")
        if isinstance(context, dict) and "serviceNetworkArn" in context and "method" in event:
            return 2
        return None

    def _decode(self, event: LambdaEvent, base_path: str, context: LambdaContext) -> HTTPRequest:
        source = self.source
        method = method_of(require(event, "method", str, source), source)
        headers = headers_from_multi(event.get("headers"), "headers")
        if self.version == 1:
            target, _, query = require(event, "raw_path", str, source).partition("?")
            params_key = "query_string_parameters"
            body = request_body(event, "body", "is_base64_encoded")
        else:
            target, query = require(event, "path", str, source), ""
            params_key = "queryStringParameters"
            body = request_body(event, "body", "isBase64Encoded")
        path = split_path(target, encoded=True, base_path=base_path)
        if query:
            query_string = as_sent(query)
        else:
            query_string = query_from_decoded(event.get(params_key), params_key)
        return build_request(
            method,
            headers,
            path,
            query_string,
            body,
            platform=self.platform(event, context),
            wsgi=self.wsgi,
        )

    def encode(self, response: HTTPResponse) -> dict[str, Any]:
        body, is_base64 = encode_body(response.body, response.headers, self.text_mime_types)
        return {
            "statusCode": response.status,
            "statusDescription": status_description(response.status),
            "headers": single_value_headers(grouped_headers(response.headers)),
            "body": body,
            "isBase64Encoded": is_base64,
        }
