"""Responses back to each source: repeated headers and cookies, text or base64 bodies, bodiless
statuses, excluded headers, Lambda's payload limit and broken responses from the app."""

from __future__ import annotations

import base64
import gzip
import json
import logging

import pytest
from adapter_apps import responder
from adapter_events import RESPONSE_KEYS, SOURCES, Request, decode_response

ALL = sorted(SOURCES)
MULTI_VALUE = ["rest-v1", "alb-multi-value"]
SINGLE_VALUE = ["alb", "lattice-v1", "lattice-v2"]
V2 = ["http-api-v2", "function-url"]


def invoke(source, app, make_adapter, request=None, **options):
    result = make_adapter(app, **options)(SOURCES[source](request or Request()), None)
    keys = set(result) - {"cookies"}
    assert keys == RESPONSE_KEYS[source]
    return result


REPEATED = [
    (b"content-type", b"text/plain"),
    (b"set-cookie", b"session=abc; Path=/; HttpOnly"),
    (b"set-cookie", b"theme=dark; Max-Age=60"),
    (b"set-cookie", b"lang=en"),
    (b"vary", b"accept"),
    (b"vary", b"cookie"),
]


@pytest.mark.parametrize("source", MULTI_VALUE)
def test_multi_value_sources_get_repeated_headers_in_multi_value_headers(source, make_adapter):
    result = invoke(source, responder(200, REPEATED, [b"ok"]), make_adapter)
    assert result["multiValueHeaders"] == {
        "content-type": ["text/plain"],
        "set-cookie": ["session=abc; Path=/; HttpOnly", "theme=dark; Max-Age=60", "lang=en"],
        "vary": ["accept", "cookie"],
    }


@pytest.mark.parametrize("source", V2)
def test_v2_sources_get_cookies_in_the_cookies_array(source, make_adapter):
    result = invoke(source, responder(200, REPEATED, [b"ok"]), make_adapter)
    assert result["cookies"] == [
        "session=abc; Path=/; HttpOnly",
        "theme=dark; Max-Age=60",
        "lang=en",
    ]
    assert result["headers"] == {"content-type": "text/plain", "vary": "accept,cookie"}


@pytest.mark.parametrize("source", V2)
def test_v2_response_without_cookies_has_no_cookies_key(source, make_adapter):
    result = invoke(source, responder(200, [(b"content-type", b"text/plain")]), make_adapter)
    assert "cookies" not in result


@pytest.mark.parametrize("source", SINGLE_VALUE)
def test_single_value_sources_keep_every_cookie_under_a_different_letter_case(source, make_adapter):
    result = invoke(source, responder(200, REPEATED, [b"ok"]), make_adapter)
    assert result["headers"] == {
        "content-type": "text/plain",
        "set-cookie": "session=abc; Path=/; HttpOnly",
        "set-cookiE": "theme=dark; Max-Age=60",
        "set-cookIe": "lang=en",
        "vary": "accept,cookie",
    }


@pytest.mark.parametrize("source", ALL)
def test_every_cookie_reaches_the_client(source, make_adapter):
    response = decode_response(invoke(source, responder(200, REPEATED, [b"ok"]), make_adapter))
    assert response.header_values("set-cookie") == [
        "session=abc; Path=/; HttpOnly",
        "theme=dark; Max-Age=60",
        "lang=en",
    ]


@pytest.mark.parametrize("source", ALL)
def test_header_names_are_lower_cased(source, make_adapter):
    app = responder(200, [(b"Content-Type", b"text/plain"), (b"X-Request-ID", b"Abc")], [b"ok"])
    response = decode_response(invoke(source, app, make_adapter))
    assert response.headers == [("content-type", "text/plain"), ("x-request-id", "Abc")]


TEXT_TYPES = [
    b"text/plain",
    b"text/html; charset=utf-8",
    b"text/csv",
    b"application/json",
    b"application/json; charset=utf-8",
    b"application/problem+json",
    b"application/vnd.api+json",
    b"application/xml",
    b"application/atom+xml",
    b"image/svg+xml",
    b"application/javascript",
    b"application/x-www-form-urlencoded",
    b"Application/JSON",
]
BINARY_TYPES = [
    b"application/octet-stream",
    b"image/png",
    b"application/pdf",
    b"font/woff2",
    b"application/zip",
]


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("content_type", TEXT_TYPES)
def test_text_content_types_travel_as_text(source, content_type, make_adapter):
    body = "caf\u00e9 \u2713 <x/> {}".encode()
    result = invoke(source, responder(200, [(b"content-type", content_type)], [body]), make_adapter)
    assert (result["body"], result["isBase64Encoded"]) == ("caf\u00e9 \u2713 <x/> {}", False)


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("content_type", BINARY_TYPES)
def test_binary_content_types_travel_as_base64(source, content_type, make_adapter):
    body = b"plain ascii bytes"
    result = invoke(source, responder(200, [(b"content-type", content_type)], [body]), make_adapter)
    assert result["isBase64Encoded"] is True
    assert result["body"] == base64.b64encode(body).decode()


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("encoding", [b"gzip", b"br", b"deflate"])
def test_compressed_bodies_travel_as_base64_whatever_their_type(source, encoding, make_adapter):
    body = gzip.compress(b'{"a": 1}', mtime=0)
    headers = [(b"content-type", b"application/json"), (b"content-encoding", encoding)]
    result = invoke(source, responder(200, headers, [body]), make_adapter)
    assert result["isBase64Encoded"] is True
    assert base64.b64decode(result["body"]) == body


@pytest.mark.parametrize("source", ALL)
def test_identity_content_encoding_is_not_compression(source, make_adapter):
    headers = [(b"content-type", b"text/plain"), (b"content-encoding", b"identity")]
    result = invoke(source, responder(200, headers, [b"hi"]), make_adapter)
    assert (result["body"], result["isBase64Encoded"]) == ("hi", False)


@pytest.mark.parametrize("source", ALL)
def test_text_type_that_is_not_utf8_travels_as_base64(source, make_adapter):
    body = "caf\u00e9".encode("latin-1")
    headers = [(b"content-type", b"text/plain; charset=latin-1")]
    result = invoke(source, responder(200, headers, [body]), make_adapter)
    assert result["isBase64Encoded"] is True
    assert base64.b64decode(result["body"]) == body


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"utf-8 text \xe2\x9c\x93", ("utf-8 text \u2713", False)),
        (b"\xff\xfe\x00binary", (base64.b64encode(b"\xff\xfe\x00binary").decode(), True)),
    ],
)
def test_without_content_type_utf8_bodies_are_text(source, body, expected, make_adapter):
    result = invoke(source, responder(200, [], [body]), make_adapter)
    assert (result["body"], result["isBase64Encoded"]) == expected


@pytest.mark.parametrize("source", ALL)
def test_text_mime_types_option_adds_text_types(source, make_adapter):
    app = responder(200, [(b"content-type", b"application/x-custom; v=1")], [b"custom"])
    result = invoke(source, app, make_adapter, text_mime_types=["application/x-custom"])
    assert (result["body"], result["isBase64Encoded"]) == ("custom", False)
    result = invoke(source, app, make_adapter)
    assert (result["body"], result["isBase64Encoded"]) == ("Y3VzdG9t", True)


@pytest.mark.parametrize("source", ALL)
def test_body_chunks_are_joined(source, make_adapter):
    app = responder(200, [(b"content-type", b"text/plain")], [b"one ", b"", b"two ", b"three"])
    assert invoke(source, app, make_adapter)["body"] == "one two three"


@pytest.mark.parametrize("source", ALL)
def test_empty_body(source, make_adapter):
    result = invoke(source, responder(200, [(b"content-type", b"text/plain")]), make_adapter)
    assert (result["statusCode"], result["body"], result["isBase64Encoded"]) == (200, "", False)


@pytest.mark.parametrize("source", ALL)
def test_head_response_carries_no_body(source, make_adapter):
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"11")]
    app = responder(200, headers, [b"hello ", b"world"])
    result = invoke(source, app, make_adapter, Request("HEAD", "/"))
    response = decode_response(result)
    assert (response.status, response.body) == (200, b"")
    assert response.header_values("content-length") == ["11"]


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("status", [204, 304])
def test_no_content_and_not_modified_carry_no_body(source, status, make_adapter):
    app = responder(status, [(b"etag", b'"v1"')], [b"must not be sent"])
    response = decode_response(invoke(source, app, make_adapter))
    assert (response.status, response.body) == (status, b"")
    assert response.header_values("etag") == ['"v1"']


@pytest.mark.parametrize("source", ALL)
def test_exclude_headers_drops_them_in_any_letter_case(source, make_adapter):
    headers = [
        (b"content-type", b"text/plain"),
        (b"x-internal", b"1"),
        (b"Server", b"uvicorn"),
        (b"x-kept", b"yes"),
    ]
    result = invoke(
        source,
        responder(200, headers, [b"ok"]),
        make_adapter,
        exclude_headers=["X-Internal", "server"],
    )
    assert decode_response(result).headers == [("content-type", "text/plain"), ("x-kept", "yes")]


# -- response size limits: Lambda's 6 MB, ALB's 1 MB of response JSON ------------------------

LAMBDA_LIMIT = 6 * 1024 * 1024
ALB_LIMIT = 1024 * 1024
#: The largest serialised response each source takes.
LIMITS = {source: ALB_LIMIT if source.startswith("alb") else LAMBDA_LIMIT for source in ALL}


def assert_413_logged(result, caplog, request_id="-"):
    response = decode_response(result)
    assert (response.status, response.body) == (413, b"Response payload too large")
    assert response.header_values("content-type") == ["text/plain; charset=utf-8"]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert request_id in record.getMessage()
    assert "payload limit" in record.getMessage()


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_response_over_the_payload_limit_becomes_413(source, kind, make_adapter, context, caplog):
    limit = LIMITS[source]
    if kind == "text":
        content_type, size = b"text/plain", limit + 1
    else:  # base64 grows a binary body by a third
        content_type, size = b"application/octet-stream", limit * 3 // 4 + 1024
    app = responder(200, [(b"content-type", content_type)], [b"x" * size])
    with caplog.at_level(logging.ERROR, logger="holdfast"):
        result = make_adapter(app)(SOURCES[source](Request()), context)
    assert_413_logged(result, caplog, context.aws_request_id)


@pytest.mark.parametrize("source", ALL)
def test_the_limit_counts_headers_too(source, make_adapter, context, caplog):
    # The case: 4.3 MiB of binary body (5.7 MiB in base64) and 300 KB of headers fit
    # no source, though the body alone fits Lambda's limit. ALB gets proportionally less.
    limit = LIMITS[source]
    body = bytes(range(256)) * (int(limit * 0.717) // 256)
    headers = [(b"x-padding-%d" % i, b"p" * 1000) for i in range(int(limit * 0.05) // 1000)]
    app = responder(200, [(b"content-type", b"application/octet-stream"), *headers], [body])
    with caplog.at_level(logging.ERROR, logger="holdfast"):
        result = make_adapter(app)(SOURCES[source](Request()), context)
    assert_413_logged(result, caplog, context.aws_request_id)


@pytest.mark.parametrize("source", ALL)
def test_response_just_under_the_limit_goes_through(source, make_adapter):
    body = b"x" * (LIMITS[source] - 4096)
    result = invoke(
        source, responder(200, [(b"content-type", b"text/plain")], [body]), make_adapter
    )
    assert result["statusCode"] == 200
    assert len(result["body"]) == len(body)
    assert len(json.dumps(result)) <= LIMITS[source]


@pytest.mark.parametrize(
    "text",
    [
        # 3.5 million characters, each escaped to 6 bytes by the runtime's JSON
        "\u00e9" * (3_500_000),
        # JSON escapes double a body of quotes and newlines
        '"\n' * 1_600_000,
    ],
    ids=["non-ascii", "escaped"],
)
def test_payload_limit_counts_the_bytes_of_the_serialised_response(text, make_adapter, caplog):
    app = responder(200, [(b"content-type", b"text/plain; charset=utf-8")], [text.encode()])
    with caplog.at_level(logging.ERROR, logger="holdfast"):
        result = make_adapter(app)(SOURCES["function-url"](Request()), None)
    assert (result["statusCode"], result["body"]) == (413, "Response payload too large")
    assert any("payload limit" in r.getMessage() for r in caplog.records)


# -- broken responses from the app --------------------------------------------------------------


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("status", [99, 600, 1000, "200", 200.0, None, True])
def test_invalid_status_from_the_app_is_a_500_and_logged(
    source, status, make_adapter, context, caplog
):
    with caplog.at_level(logging.ERROR, logger="holdfast"):
        result = make_adapter(responder(status, [], [b"x"]))(SOURCES[source](Request()), context)
    response = decode_response(result)
    assert (response.status, response.body) == (500, b"Internal Server Error")
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert context.aws_request_id in record.getMessage()
    assert f"invalid HTTP status code {status!r}" in str(record.exc_info[1])


def test_app_returning_without_a_response_is_a_500(make_adapter, context, caplog):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})

    with caplog.at_level(logging.ERROR, logger="holdfast"):
        result = make_adapter(app, lifespan="off")(SOURCES["function-url"](Request()), context)
    assert (result["statusCode"], result["body"]) == (500, "Internal Server Error")
    [record] = caplog.records
    assert record.getMessage() == (
        f"request {context.aws_request_id}: the app returned without a complete response"
    )


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.response.body", "body": b"x"}],
        [
            {"type": "http.response.start", "status": 200, "headers": []},
            {"type": "http.response.start", "status": 200, "headers": []},
        ],
        [{"type": "websocket.send", "text": "x"}],
    ],
    ids=["body-before-start", "start-twice", "unknown-message"],
)
def test_protocol_errors_before_the_response_are_a_500(messages, make_adapter, caplog):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            for message in messages:
                await send(message)

    with caplog.at_level(logging.ERROR, logger="holdfast"):
        result = make_adapter(app, lifespan="off")(SOURCES["alb"](Request()), None)
    assert (result["statusCode"], result["statusDescription"]) == (500, "500 Internal Server Error")
    assert len(caplog.records) == 1


def test_trailers_are_ignored(make_adapter):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [], "trailers": True}
            )
            await send({"type": "http.response.body", "body": b"ok"})
            await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"1")]})

    result = make_adapter(app, lifespan="off")(SOURCES["function-url"](Request()), None)
    assert (result["statusCode"], result["body"], result["headers"]) == (200, "ok", {})
