"""Lambda HTTP events built from one HTTP request the way each source would deliver it, and
Lambda responses decoded back into the HTTP response a client would see.

Every builder starts from a real event shape in ``tests/fixtures/events`` and overwrites the
request's parts, encoding them as that source does:

========================  ==========================  ============================  ==========
source                    path                        query                         headers
========================  ==========================  ============================  ==========
Function URL (v2)         rawPath as sent             rawQueryString as sent        joined ","
HTTP API (v2)             rawPath decoded             rawQueryString as sent        joined ","
REST API (v1)             path as sent                decoded, grouped by key       grouped
ALB multi-value           path as sent                as sent, grouped by key       grouped
ALB single-value          path as sent                as sent, last value per key   last
VPC Lattice v1            raw_path as sent            decoded, last value per key   joined ","
VPC Lattice v2            path as sent                decoded, grouped by key       grouped
========================  ==========================  ============================  ==========

Cookies travel in the v2 ``cookies`` array; binary bodies are base64-encoded.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"

CLIENT_IP = "203.0.113.9"


@functools.cache
def _fixture(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of fixture ``tests/fixtures/events/<name>.json``."""
    return json.loads(_fixture(name))


def event_with(fixture: str, path: list[str], value: Any) -> dict[str, Any]:
    """Fixture ``fixture`` with the field at ``path`` (keys from the top) set to ``value``."""
    event = load_event(fixture)
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return event


@dataclass(frozen=True)
class Request:
    """An HTTP request as a client puts it on the wire."""

    method: str = "GET"
    #: Percent-encoded path, then ``?`` and the raw query string.
    target: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    source_ip: str = CLIENT_IP

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def grouped_headers(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for name, value in self.headers:
            grouped.setdefault(name.lower(), []).append(value)
        return grouped

    def forwarded_headers(self) -> dict[str, list[str]]:
        """Headers as a load balancer passes them: with the client in X-Forwarded-For."""
        grouped = self.grouped_headers()
        grouped.setdefault("x-forwarded-for", [self.source_ip])
        return grouped


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def decoded_query(query: str) -> dict[str, list[str]]:
    """Query parameters decoded as API Gateway and VPC Lattice pass them, grouped by key."""
    return _grouped(parse_qsl(query, keep_blank_values=True))


def encoded_query(query: str) -> dict[str, list[str]]:
    """Query parameters as ALB passes them: split, still URL-encoded, grouped by key."""
    pairs = []
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        pairs.append((key, value))
    return _grouped(pairs)


def _last(grouped: dict[str, list[str]]) -> dict[str, str]:
    return {key: values[-1] for key, values in grouped.items()}


def _put(event: dict[str, Any], key: str, value: Any) -> None:
    """``event[key] = value``, or no ``key`` at all when ``value`` is empty."""
    if value:
        event[key] = value
    else:
        event.pop(key, None)


def _set_body(event: dict[str, Any], body: bytes, body_key: str, base64_key: str) -> None:
    try:
        event[body_key] = body.decode("utf-8")
        event[base64_key] = False
    except UnicodeDecodeError:
        event[body_key] = base64.b64encode(body).decode("ascii")
        event[base64_key] = True


def _v2_event(fixture: str, request: Request, raw_path: str) -> dict[str, Any]:
    event = load_event(fixture)
    grouped = request.grouped_headers()
    cookies = [c.strip() for header in grouped.pop("cookie", ()) for c in header.split(";")]
    _put(event, "cookies", cookies)
    event["headers"] = {name: ",".join(values) for name, values in grouped.items()}
    event["rawPath"] = raw_path
    event["rawQueryString"] = request.query
    params = decoded_query(request.query)
    _put(event, "queryStringParameters", {k: ",".join(v) for k, v in params.items()})
    http = event["requestContext"]["http"]
    http.update(method=request.method, path=raw_path, sourceIp=request.source_ip)
    _set_body(event, request.body, "body", "isBase64Encoded")
    return event


def function_url_event(request: Request) -> dict[str, Any]:
    """A Lambda Function URL event (payload 2.0): the path stays as the client sent it."""
    return _v2_event("function-url", request, request.path)


def http_api_event(request: Request, stage: str = "$default") -> dict[str, Any]:
    """An API Gateway HTTP API event (payload 2.0): rawPath arrives decoded; a named stage
    stands at its front."""
    prefix = "" if stage == "$default" else f"/{stage}"
    event = _v2_event("apigateway-http-api", request, prefix + unquote(request.path))
    event["requestContext"]["stage"] = stage
    return event


def rest_event(request: Request, stage: str | None = None) -> dict[str, Any]:
    """An API Gateway REST API event (payload 1.0). With ``stage``, the client called the
    stage's invoke URL: ``requestContext.path`` carries the stage, ``path`` does not."""
    event = load_event("apigateway-aws-proxy")
    grouped = request.grouped_headers()
    event["headers"] = _last(grouped)
    event["multiValueHeaders"] = grouped
    params = decoded_query(request.query)
    event["queryStringParameters"] = _last(params) or None
    event["multiValueQueryStringParameters"] = params or None
    event["httpMethod"] = request.method
    event["path"] = request.path
    event["pathParameters"] = {"proxy": request.path.lstrip("/")}
    context = event["requestContext"]
    context.update(
        httpMethod=request.method,
        path=f"/{stage}{request.path}" if stage else request.path,
        stage=stage or "$default",
    )
    context["identity"]["sourceIp"] = request.source_ip
    _set_body(event, request.body, "body", "isBase64Encoded")
    return event


def alb_event(request: Request, *, multi_value: bool) -> dict[str, Any]:
    """An ALB target group event, in multi-value-headers mode or not."""
    event = load_event("alb-multi-value" if multi_value else "alb-request")
    for key in ("headers", "multiValueHeaders", "queryStringParameters"):
        event.pop(key, None)
    event.pop("multiValueQueryStringParameters", None)
    headers = request.forwarded_headers()
    params = encoded_query(request.query)
    if multi_value:
        event["multiValueHeaders"] = headers
        event["multiValueQueryStringParameters"] = params
    else:
        event["headers"] = _last(headers)
        event["queryStringParameters"] = _last(params)
    event["httpMethod"] = request.method
    event["path"] = request.path
    _set_body(event, request.body, "body", "isBase64Encoded")
    return event


def lattice_v1_event(request: Request) -> dict[str, Any]:
    """A VPC Lattice event, structure version 1 (snake_case, single-value headers)."""
    event = load_event("lattice-v1")
    event["raw_path"] = request.path
    event["method"] = request.method
    event["headers"] = {k: ",".join(v) for k, v in request.forwarded_headers().items()}
    _put(event, "query_string_parameters", _last(decoded_query(request.query)))
    _set_body(event, request.body, "body", "is_base64_encoded")
    return event


def lattice_v2_event(request: Request) -> dict[str, Any]:
    """A VPC Lattice event, structure version 2 (list-valued headers and parameters)."""
    event = load_event("lattice-v2")
    event["path"] = request.path
    event["method"] = request.method
    event["headers"] = request.forwarded_headers()
    _put(event, "queryStringParameters", decoded_query(request.query))
    _set_body(event, request.body, "body", "isBase64Encoded")
    return event


EventBuilder = Callable[[Request], dict[str, Any]]

#: Every source, by name: how it turns a request into an event.
SOURCES: dict[str, EventBuilder] = {
    "rest-v1": rest_event,
    "http-api-v2": http_api_event,
    "function-url": function_url_event,
    "alb": functools.partial(alb_event, multi_value=False),
    "alb-multi-value": functools.partial(alb_event, multi_value=True),
    "lattice-v1": lattice_v1_event,
    "lattice-v2": lattice_v2_event,
}

#: The response keys each source expects (``cookies`` only when the app set cookies).
RESPONSE_KEYS = {
    "rest-v1": {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"},
    "http-api-v2": {"statusCode", "headers", "body", "isBase64Encoded"},
    "function-url": {"statusCode", "headers", "body", "isBase64Encoded"},
    "alb": {"statusCode", "statusDescription", "headers", "body", "isBase64Encoded"},
    "alb-multi-value": {
        "statusCode",
        "statusDescription",
        "multiValueHeaders",
        "body",
        "isBase64Encoded",
    },
    "lattice-v1": {"statusCode", "statusDescription", "headers", "body", "isBase64Encoded"},
    "lattice-v2": {"statusCode", "statusDescription", "headers", "body", "isBase64Encoded"},
}


@dataclass
class Response:
    """What the client of the source receives for a Lambda response."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def grouped(self) -> dict[str, list[str]]:
        return _grouped(self.headers)


def decode_response(result: dict[str, Any]) -> Response:
    """The HTTP response a source builds from Lambda response ``result``.

    ``multiValueHeaders`` wins where present; single-value sources may carry a header under
    several letter cases (repeated Set-Cookie), which all count; v2 ``cookies`` become
    Set-Cookie headers.
    """
    if "multiValueHeaders" in result:
        headers = [
            (name.lower(), value)
            for name, values in result["multiValueHeaders"].items()
            for value in values
        ]
    else:
        headers = [(name.lower(), value) for name, value in result["headers"].items()]
    headers.extend(("set-cookie", cookie) for cookie in result.get("cookies", ()))
    body = result["body"]
    raw = base64.b64decode(body) if result["isBase64Encoded"] else body.encode("utf-8")
    return Response(result["statusCode"], headers, raw)
