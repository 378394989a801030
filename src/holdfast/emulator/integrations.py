"""HTTP requests into Lambda events, and Lambda responses back into HTTP, as AWS does it.

Three integrations: `v2` (a Function URL; API Gateway HTTP API payload 2.0), `v1` (an API Gateway
REST API proxy integration, payload 1.0, stage `prod` on a custom domain so paths carry no stage
prefix) and `alb` (an Application Load Balancer target group, single-value headers unless
multi-value mode is on). Pure functions, no I/O: the front calls them on each request.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .config import ACCOUNT_ID, EventFormat

URL_ID = "holdfastemulatorlocal0000000000"
API_ID = "holdfast01"
STAGE = "prod"
PRELUDE_DELIMITER = b"\0" * 8
HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"

_FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-port"})
_TEXT_TYPES = ("application/json", "application/javascript", "application/xml")
_TEXT_SUFFIXES = ("+json", "+xml")
_ALB_BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class HttpRequest:
    """A request as the front received it: path and query still exactly as sent."""

    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"
    port: int = 80


def forwarded(request: HttpRequest) -> HttpRequest:
    """`request` with the X-Forwarded-* headers API Gateway, Function URLs and ALB add.

    `X-Forwarded-For` gets the client's address appended to whatever list the client sent (the
    services append, they do not replace: only the last entry is the platform's word);
    `X-Forwarded-Proto` and `X-Forwarded-Port` are set to what the client really connected to,
    replacing any copies it sent. On AWS they say `https` and `443`; here they say the
    emulator's own scheme and port, so redirects built from them work locally.
    """
    chain = []
    headers = []
    for name, value in request.headers:
        lowered = name.lower()
        if lowered not in _FORWARDED:
            headers.append((name, value))
        elif lowered == "x-forwarded-for":
            chain.append(value)
    chain.append(request.source_ip)
    headers += [
        ("X-Forwarded-For", ", ".join(chain)),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Port", str(request.port)),
    ]
    # Built directly: `dataclasses.replace` costs more than the whole header pass above.
    return HttpRequest(
        request.method,
        request.raw_path,
        request.raw_query,
        headers,
        request.body,
        request.source_ip,
        request.protocol,
        request.port,
    )


@dataclass
class HttpResponse:
    """A response to send to the HTTP client."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class MalformedResponse(ValueError):
    """The function answered something the integration cannot turn into HTTP."""


# -- requests -> events ---------------------------------------------------------------------------


def build_event(
    event_format: EventFormat,
    request: HttpRequest,
    *,
    request_id: str,
    region: str = "us-east-1",
    function_name: str = "function",
    alb_multi_value: bool = False,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The event `event_format`'s integration would send the function for `request`."""
    now = now or datetime.datetime.now(datetime.UTC)
    request = forwarded(request)
    if event_format == "v2":
        return _v2_event(request, request_id, region, now)
    if event_format == "v1":
        return _v1_event(request, request_id, region, now)
    return _alb_event(request, region, function_name, alb_multi_value)


def _v2_event(
    request: HttpRequest, request_id: str, region: str, now: datetime.datetime
) -> dict[str, Any]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        name = name.lower()
        if name == "cookie":
            cookies += [cookie for part in value.split(";") if (cookie := part.strip())]
        elif name in headers:
            headers[name] = f"{headers[name]},{value}"
        else:
            headers[name] = value
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
    }
    if cookies:
        event["cookies"] = cookies
    if query := _comma_joined(_query_pairs(request.raw_query, decode=True)):
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": "anonymous",
        "apiId": URL_ID,
        "domainName": f"{URL_ID}.lambda-url.{region}.on.aws",
        "domainPrefix": URL_ID,
        "http": {
            "method": request.method,
            "path": request.raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": _clf_time(now),
        "timeEpoch": _epoch_ms(now),
    }
    body, is_base64 = _encode_body(request)
    if body:
        event["body"] = body
    event["isBase64Encoded"] = is_base64
    return event


def _v1_event(
    request: HttpRequest, request_id: str, region: str, now: datetime.datetime
) -> dict[str, Any]:
    multi_headers = _grouped(request.headers)
    multi_query = _grouped(_query_pairs(request.raw_query, decode=True))
    proxy = unquote(request.raw_path.lstrip("/"))
    user_agent = next((v for k, v in request.headers if k.lower() == "user-agent"), None)
    body, is_base64 = _encode_body(request)
    return {
        "resource": "/{proxy+}",
        "path": request.raw_path,
        "httpMethod": request.method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": proxy} if proxy else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": f"{API_ID}.execute-api.{region}.amazonaws.com",
            "domainPrefix": API_ID,
            "extendedRequestId": secrets.token_urlsafe(12),
            "httpMethod": request.method,
            "identity": _v1_identity(request.source_ip, user_agent),
            "path": f"/{STAGE}{request.raw_path}",
            "protocol": request.protocol,
            "requestId": request_id,
            "requestTime": _clf_time(now),
            "requestTimeEpoch": _epoch_ms(now),
            "resourceId": "proxy0",
            "resourcePath": "/{proxy+}",
            "stage": STAGE,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def _v1_identity(source_ip: str, user_agent: str | None) -> dict[str, Any]:
    empty = [
        "accessKey",
        "accountId",
        "caller",
        "cognitoAuthenticationProvider",
        "cognitoAuthenticationType",
        "cognitoIdentityId",
        "cognitoIdentityPoolId",
        "principalOrgId",
        "user",
        "userArn",
    ]
    return {**dict.fromkeys(empty), "sourceIp": source_ip, "userAgent": user_agent}


def _alb_event(
    request: HttpRequest, region: str, function_name: str, multi_value: bool
) -> dict[str, Any]:
    target_group = f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT_ID}:targetgroup/{function_name}"
    headers = [(name.lower(), value) for name, value in request.headers]
    # ALB passes query strings on without decoding them.
    query = _query_pairs(request.raw_query, decode=False)
    body, is_base64 = _encode_body(request)
    event: dict[str, Any] = {
        "requestContext": {"elb": {"targetGroupArn": f"{target_group}/{'0' * 16}"}},
        "httpMethod": request.method,
        "path": request.raw_path,
    }
    if multi_value:
        event["multiValueQueryStringParameters"] = _grouped(query)
        event["multiValueHeaders"] = _grouped(headers)
    else:
        event["queryStringParameters"] = dict(query)
        event["headers"] = dict(headers)
    event["body"] = body or ""
    event["isBase64Encoded"] = is_base64
    return event


# -- responses -> HTTP ----------------------------------------------------------------------------


def decode_response(
    event_format: EventFormat, payload: bytes, *, alb_multi_value: bool = False
) -> HttpResponse:
    """The HTTP response the integration makes of a function's (successful) payload.

    Raises `MalformedResponse` where the integration would answer 502 instead.
    """
    try:
        document = json.loads(payload)
    except ValueError:
        raise MalformedResponse("the function response is not JSON") from None
    if event_format == "v2" and not (isinstance(document, dict) and "statusCode" in document):
        # A JSON answer without statusCode is the body of a 200 (HTTP API / Function URL rule).
        return HttpResponse(200, [("content-type", "application/json")], payload)
    if not isinstance(document, dict):
        raise MalformedResponse("the function response is not a JSON object")
    status = _status_code(document.get("statusCode"))
    if event_format == "v2":
        headers = _single_headers(document.get("headers"))
        headers += [("set-cookie", _text(c)) for c in _list(document.get("cookies"))]
    elif event_format == "v1":
        headers = _merged_headers(document.get("headers"), document.get("multiValueHeaders"))
    elif alb_multi_value:
        headers = _multi_headers(document.get("multiValueHeaders"))
    else:
        headers = _single_headers(document.get("headers"))
    body = _decode_body(document.get("body"), document.get("isBase64Encoded", False))
    if event_format != "alb" and not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("content-type", "application/json"))
    return HttpResponse(status, headers, body)


def error_response(event_format: EventFormat) -> HttpResponse:
    """What the integration answers for a function error or a malformed response: a 502."""
    if event_format == "alb":
        return HttpResponse(502, [("content-type", "text/html")], _ALB_BAD_GATEWAY)
    message = "Internal Server Error" if event_format == "v2" else "Internal server error"
    body = json.dumps({"message": message}).encode()
    return HttpResponse(502, [("content-type", "application/json")], body)


def split_prelude(buffer: bytes) -> tuple[HttpResponse, bytes] | None:
    """Parse the JSON prelude of a streamed HTTP-integration response.

    Returns the status and headers (with an empty body) and the body bytes that followed the
    8-NUL delimiter, or None while the delimiter has not arrived yet.
    """
    index = buffer.find(PRELUDE_DELIMITER)
    if index < 0:
        return None
    try:
        prelude = json.loads(buffer[:index] or b"{}")
    except ValueError:
        raise MalformedResponse("the streaming prelude is not JSON") from None
    if not isinstance(prelude, dict):
        raise MalformedResponse("the streaming prelude is not a JSON object")
    status = _status_code(prelude.get("statusCode", 200))
    headers = _single_headers(prelude.get("headers"))
    headers += [("set-cookie", _text(c)) for c in _list(prelude.get("cookies"))]
    return HttpResponse(status, headers), buffer[index + len(PRELUDE_DELIMITER) :]


# -- helpers --------------------------------------------------------------------------------------


def _query_pairs(raw_query: str, *, decode: bool) -> list[tuple[str, str]]:
    # `unquote`, not `unquote_plus`: API Gateway leaves a literal "+" alone.
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)) if decode else (key, value))
    return pairs


def _comma_joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for key, value in pairs:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def _is_text(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(_TEXT_SUFFIXES)


def _encode_body(request: HttpRequest) -> tuple[str | None, bool]:
    """The body as the event carries it: text as is, anything else base64-encoded."""
    if not request.body:
        return None, False
    content_type = next((v for k, v in request.headers if k.lower() == "content-type"), "")
    if _is_text(content_type):
        try:
            return request.body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(request.body).decode("ascii"), True


def _clf_time(now: datetime.datetime) -> str:
    # Formatted once a second, not per request: strftime is the costliest call in an event.
    # (The offset is part of the key: aware times in two zones compare equal, print apart.)
    global _clf_cache
    key = (now.replace(microsecond=0), now.utcoffset())
    if _clf_cache[0] != key:
        _clf_cache = (key, now.strftime("%d/%b/%Y:%H:%M:%S +0000"))
    return _clf_cache[1]


_clf_cache: tuple[object, str] = (None, "")


def _epoch_ms(now: datetime.datetime) -> int:
    return int(now.timestamp() * 1000)


def _status_code(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedResponse(f"statusCode {value!r} is not an integer")
    try:
        status = int(value)
    except ValueError:
        raise MalformedResponse(f"statusCode {value!r} is not an integer") from None
    if not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode {status} is out of range")
    return status


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    raise MalformedResponse(f"header value {value!r} is not a string")


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedResponse(f"{value!r} is not a list")
    return value


def _mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedResponse(f"headers {value!r} are not an object")
    return value


def _single_headers(value: Any) -> list[tuple[str, str]]:
    return [(name, _text(v)) for name, v in _mapping(value).items()]


def _multi_headers(value: Any) -> list[tuple[str, str]]:
    return [(name, _text(v)) for name, values in _mapping(value).items() for v in _list(values)]


def _merged_headers(single: Any, multi: Any) -> list[tuple[str, str]]:
    # REST API: both maps are merged; where a name is in both, multiValueHeaders wins.
    merged = _multi_headers(multi)
    present = {name.lower() for name, _ in merged}
    merged += [(k, v) for k, v in _single_headers(single) if k.lower() not in present]
    return merged


def _decode_body(body: Any, is_base64: Any) -> bytes:
    if body is None:
        return b""
    if not isinstance(body, str):
        raise MalformedResponse("body is not a string")
    if not is_base64:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (ValueError, binascii.Error):
        raise MalformedResponse("body is not valid base64") from None
