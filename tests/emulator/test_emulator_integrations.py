"""HTTP requests into events and Lambda responses back into HTTP, without any process."""

import base64
import datetime
import json

import pytest

from holdfast.emulator.integrations import (
    HttpRequest,
    MalformedResponse,
    build_event,
    decode_response,
    error_response,
    split_prelude,
)

NOW = datetime.datetime(2024, 3, 12, 19, 3, 58, 390000, tzinfo=datetime.UTC)
REQUEST = HttpRequest(
    method="GET",
    raw_path="/items/a%20b",
    raw_query="x=1&x=2&y=a%2Bb+c&flag",
    headers=[
        ("Host", "localhost:9000"),
        ("User-Agent", "tests/1.0"),
        ("Cookie", "a=1; b=2"),
        ("X-Multi", "one"),
        ("x-multi", "two"),
    ],
    source_ip="127.0.0.9",
)


def event(event_format, request=REQUEST, **options):
    return build_event(event_format, request, request_id="rid-1", now=NOW, **options)


def test_v2_function_url_event():
    built = event("v2")
    assert built["version"] == "2.0" and built["routeKey"] == "$default"
    assert built["rawPath"] == "/items/a%20b"
    assert built["rawQueryString"] == "x=1&x=2&y=a%2Bb+c&flag"
    assert built["cookies"] == ["a=1", "b=2"]
    assert built["headers"]["x-multi"] == "one,two"
    assert built["headers"]["user-agent"] == "tests/1.0"
    assert "cookie" not in built["headers"]
    assert built["queryStringParameters"] == {"x": "1,2", "y": "a+b+c", "flag": ""}
    context = built["requestContext"]
    assert context["domainName"].endswith(".lambda-url.us-east-1.on.aws")
    assert context["http"] == {
        "method": "GET",
        "path": "/items/a%20b",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.9",
        "userAgent": "tests/1.0",
    }
    assert context["requestId"] == "rid-1"
    assert context["time"] == "12/Mar/2024:19:03:58 +0000"
    assert context["timeEpoch"] == 1710270238390
    assert "body" not in built and built["isBase64Encoded"] is False


def test_v2_leaves_out_what_is_absent():
    built = event("v2", HttpRequest("GET", "/", "", [("Host", "h")]))
    assert "cookies" not in built and "queryStringParameters" not in built
    assert built["rawQueryString"] == ""


@pytest.mark.parametrize(
    ("content_type", "body", "expected", "is_base64"),
    [
        ("application/json", b'{"a": 1}', '{"a": 1}', False),
        ("text/plain; charset=utf-8", "héllo".encode(), "héllo", False),
        ("application/vnd.api+json", b"{}", "{}", False),
        ("application/octet-stream", b"\x00\xff", base64.b64encode(b"\x00\xff").decode(), True),
        ("image/png", b"png", base64.b64encode(b"png").decode(), True),
        ("text/plain", b"\xff\xfe", base64.b64encode(b"\xff\xfe").decode(), True),
    ],
)
def test_bodies_are_text_or_base64(content_type, body, expected, is_base64):
    request = HttpRequest("POST", "/", "", [("Content-Type", content_type)], body)
    for event_format in ("v2", "v1", "alb"):
        built = event(event_format, request)
        assert (built["body"], built["isBase64Encoded"]) == (expected, is_base64)


def test_v1_rest_proxy_event():
    built = event("v1")
    assert built["resource"] == "/{proxy+}"
    assert built["path"] == "/items/a%20b"
    assert built["httpMethod"] == "GET"
    assert built["headers"]["X-Multi"] == "one"
    assert built["headers"]["x-multi"] == "two"
    assert built["multiValueHeaders"]["Cookie"] == ["a=1; b=2"]
    assert built["queryStringParameters"] == {"x": "2", "y": "a+b+c", "flag": ""}
    assert built["multiValueQueryStringParameters"] == {
        "x": ["1", "2"],
        "y": ["a+b+c"],
        "flag": [""],
    }
    assert built["pathParameters"] == {"proxy": "items/a b"}
    context = built["requestContext"]
    assert context["stage"] == "prod" and context["path"] == "/prod/items/a%20b"
    assert context["identity"]["sourceIp"] == "127.0.0.9"
    assert context["identity"]["userAgent"] == "tests/1.0"
    assert context["requestId"] == "rid-1"
    assert built["body"] is None and built["isBase64Encoded"] is False


def test_v1_nulls_without_query():
    built = event("v1", HttpRequest("GET", "/", "", [("Host", "h")]))
    assert built["queryStringParameters"] is None
    assert built["multiValueQueryStringParameters"] is None
    assert built["pathParameters"] is None


def test_alb_single_value_event():
    built = event("alb")
    assert built["requestContext"]["elb"]["targetGroupArn"].startswith(
        "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/"
    )
    assert built["path"] == "/items/a%20b"
    assert built["queryStringParameters"] == {"x": "2", "y": "a%2Bb+c", "flag": ""}
    assert built["headers"]["x-multi"] == "two"
    assert "multiValueHeaders" not in built
    assert built["body"] == "" and built["isBase64Encoded"] is False


def test_alb_multi_value_event():
    built = event("alb", alb_multi_value=True)
    assert built["multiValueQueryStringParameters"]["x"] == ["1", "2"]
    assert built["multiValueQueryStringParameters"]["y"] == ["a%2Bb+c"]
    assert built["multiValueHeaders"]["x-multi"] == ["one", "two"]
    assert "headers" not in built and "queryStringParameters" not in built


def test_v2_response_rules():
    plain = decode_response("v2", b'{"hello": "world"}')
    assert (plain.status, plain.body) == (200, b'{"hello": "world"}')
    assert ("content-type", "application/json") in plain.headers
    assert decode_response("v2", b'"just a string"').status == 200

    full = decode_response(
        "v2",
        json.dumps(
            {
                "statusCode": 302,
                "headers": {"Location": "/there", "X-Number": 5},
                "cookies": ["a=1; Path=/", "b=2"],
                "body": base64.b64encode(b"\x00bin").decode(),
                "isBase64Encoded": True,
            }
        ).encode(),
    )
    assert full.status == 302 and full.body == b"\x00bin"
    assert ("Location", "/there") in full.headers and ("X-Number", "5") in full.headers
    assert [v for k, v in full.headers if k == "set-cookie"] == ["a=1; Path=/", "b=2"]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"statusCode": "abc"}',
        b'{"statusCode": 200, "body": {"not": "a string"}}',
        b'{"statusCode": 200, "body": "%%%", "isBase64Encoded": true}',
        b'{"statusCode": 200, "headers": ["x"]}',
        b'{"statusCode": 99}',
    ],
)
def test_malformed_responses(payload):
    with pytest.raises(MalformedResponse):
        decode_response("v2", payload)


def test_v1_requires_status_code_and_merges_headers():
    with pytest.raises(MalformedResponse):
        decode_response("v1", b'{"hello": "world"}')
    response = decode_response(
        "v1",
        json.dumps(
            {
                "statusCode": 200,
                "headers": {"X-One": "single", "X-Both": "single"},
                "multiValueHeaders": {"X-Both": ["m1", "m2"]},
                "body": "ok",
            }
        ).encode(),
    )
    assert sorted(response.headers) == sorted(
        [
            ("X-Both", "m1"),
            ("X-Both", "m2"),
            ("X-One", "single"),
            ("content-type", "application/json"),
        ]
    )


def test_alb_response_modes():
    payload = json.dumps(
        {
            "statusCode": 404,
            "statusDescription": "999 Ignored",
            "headers": {"x-single": "s"},
            "multiValueHeaders": {"x-multi": ["1", "2"]},
            "body": "nope",
        }
    ).encode()
    single = decode_response("alb", payload)
    assert single.status == 404 and single.headers == [("x-single", "s")]
    multi = decode_response("alb", payload, alb_multi_value=True)
    assert multi.headers == [("x-multi", "1"), ("x-multi", "2")]


def test_error_responses():
    assert json.loads(error_response("v2").body) == {"message": "Internal Server Error"}
    assert json.loads(error_response("v1").body) == {"message": "Internal server error"}
    assert error_response("alb").status == 502 and b"502 Bad Gateway" in error_response("alb").body


def test_streaming_prelude():
    assert split_prelude(b'{"statusCode": 201}') is None
    head, rest = split_prelude(b'{"statusCode": 201, "cookies": ["c=1"]}' + b"\0" * 8 + b"body")
    assert head.status == 201 and ("set-cookie", "c=1") in head.headers
    assert rest == b"body"
    with pytest.raises(MalformedResponse):
        split_prelude(b"nope" + b"\0" * 8)
