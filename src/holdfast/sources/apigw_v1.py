"""API Gateway REST API (payload format 1.0), and HTTP APIs set to payload format 1.0."""

from __future__ import annotations

from typing import Any

from holdfast._types import LambdaContext, LambdaEvent
from holdfast.sources.bodies import encode_body, request_body
from holdfast.sources.codec import EventCodec
from holdfast.sources.fields import METHODS, method_of, optional, optional_text, require
from holdfast.sources.headers import known_multi_headers, merged_headers, plain_names
from holdfast.sources.limits import LAMBDA_RESPONSE_LIMIT
from holdfast.sources.messages import HTTPRequest, HTTPResponse
from holdfast.sources.paths import split_path
from holdfast.sources.query import merged_params, plain_query, query_from_decoded
from holdfast.sources.request import build_request, plain_request
from holdfast.sources.response_headers import grouped_headers

_SOURCE = "REST API v1"


class APIGatewayV1(EventCodec):
    """Payload 1.0: single and multi-value headers and query parameters, stage outside ``path``."""

    name = "apigw_v1"
    source = _SOURCE
    #: Lambda's limit; API Gateway accepts more than Lambda returns.
    max_response_bytes = LAMBDA_RESPONSE_LIMIT

    @staticmethod
    def plain(event: LambdaEvent, base_path: str) -> HTTPRequest | None:
        """The request of an event as API Gateway sends it, read in one pass
        (:func:`~holdfast.sources.request.plain_request`); ``None`` for any other event, whatever
        is unusual in it, and never an exception: ``_decode`` then decides."""
        request_context = event.get("requestContext")
        method = event.get("httpMethod")
        single = event.get("headers")
        multi = event.get("multiValueHeaders")
        if (
            type(request_context) is not dict
            or type(method) is not str
            or type(single) is not dict
            or type(multi) is not dict
            or not single.keys() <= multi.keys()  # both forms, as the front sends them
        ):
            return None
        method = METHODS.get(method)
        raw = known_multi_headers(multi, plain_names)  # None: a new name, a null, not latin-1
        if raw is None:
            return None
        single_query = event.get("queryStringParameters")
        multi_query = event.get("multiValueQueryStringParameters")
        if multi_query is None and single_query is None:
            query: str | None = ""
        elif (
            type(multi_query) is dict
            and type(single_query) is dict
            and single_query.keys() <= multi_query.keys()
        ):
            query = plain_query(multi_query) if multi_query else ""
        else:
            query = None
        path = event.get("path")
        requested = request_context.get("path")
        identity = request_context.get("identity")
        if (
            method is None
            or (not raw and single)  # the general path takes the single-value form then
            or query is None
            or type(path) is not str
            or path[:1] != "/"  # not startswith: see paths.plain_split
            or type(identity) is not dict
        ):
            return None
        source_ip = identity.get("sourceIp")
        if type(source_ip) is not str:
            return None
        # The stage (or a base path mapping) stands before `path` in what the client asked for.
        if type(requested) is not str or requested == path:
            mount = ""
        elif path == "/":
            mount = requested.rstrip("/")
            path = mount + "/"
        elif requested[-len(path) :] == path:  # not endswith: see paths.plain_split
            path, mount = requested, requested[: -len(path)]
        else:
            return None
        return plain_request(
            method, raw, path, mount, base_path, query.encode("ascii"), event, source_ip
        )

    @staticmethod
    def matches(event: LambdaEvent) -> bool:
        context = event.get("requestContext")
        return (
            "httpMethod" in event
            and isinstance(context, dict)
            and "elb" not in context
            and event.get("version", "1.0") == "1.0"
        )

    def _decode(self, event: LambdaEvent, base_path: str, context: LambdaContext) -> HTTPRequest:
        """Every event, field by field: the reference for :meth:`plain`."""
        # The common types are tested inline (as in apigw_v2); the helpers word the refusal.
        request_context = event.get("requestContext")
        if type(request_context) is not dict:
            request_context = require(event, "requestContext", dict, _SOURCE)
        method = event.get("httpMethod")
        if type(method) is not str:
            method = require(event, "httpMethod", str, _SOURCE)
        method = method_of(method, _SOURCE)
        # API Gateway sends every header and parameter in both forms; an event that lost one
        # from the multi-value form keeps it from the single-value one.
        headers = merged_headers(event.get("headers"), event.get("multiValueHeaders"))
        params = merged_params(
            event.get("queryStringParameters"), event.get("multiValueQueryStringParameters")
        )
        full_path, mount = _full_path(event, request_context)
        path = split_path(full_path, encoded=_encodes_path(event), mount=mount, base_path=base_path)
        identity = request_context.get("identity")
        if type(identity) is not dict:
            identity = optional(request_context, "identity", dict, _SOURCE) or {}
        return build_request(
            method,
            headers,
            path,
            query_from_decoded(params),
            request_body(event, "body", "isBase64Encoded"),
            platform=self.platform(event, context),
            wsgi=self.wsgi,
            source_ip=optional_text(identity, "sourceIp", _SOURCE),
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


def _full_path(event: LambdaEvent, request_context: dict[str, Any]) -> tuple[str, str]:
    """``(full path, mount)``: REST keeps the stage (or base path mapping) out of ``path`` and
    puts the path the client asked for in ``requestContext.path``."""
    path = optional_text(event, "path", _SOURCE) or "/"
    requested = request_context.get("path")
    if not isinstance(requested, str) or requested == path:
        return path, ""
    if path == "/":
        mount = requested.rstrip("/")
        return f"{mount}/", mount
    if requested.endswith(path):
        return requested, requested[: -len(path)]
    return path, ""
