"""Every event source, from the real sample events in tests/fixtures/events: the exact ASGI scope
the app receives, and the exact response document the source gets back."""

from __future__ import annotations

import json

import pytest
from adapter_apps import client_headers, responder
from adapter_events import load_event

from holdfast import InvalidEvent

JSON_BODY = b'{"test":"body"}'

LATTICE_HOST = "lattice-svc-0a40eebed65f8d69c.7d67968.vpc-lattice-svcs.us-east-2.on.aws"
SCOPE_KEYS = ("method", "scheme", "server", "client", "root_path", "path", "query_string")
V2_QUERY = b"parameter1=value1&parameter1=value2&parameter2=value"
# fixture -> (the scope items the app must get, in SCOPE_KEYS order; the request body)
EXPECTED_SCOPES = {
    "apigateway-aws-proxy": (
        ("POST", "https", ("0123456789.execute-api.us-east-1.amazonaws.com", 443)),
        (("127.0.0.1", 0), "/prod", "/prod/path/to/resource", b"foo=bar"),
        JSON_BODY,
    ),
    "apigateway-http-api": (
        ("POST", "https", None),
        (("192.168.0.1/32", 0), "", "/path/to/resource", V2_QUERY),
        JSON_BODY,
    ),
    "function-url": (
        ("POST", "https", None),
        (("123.123.123.123", 0), "", "/my/path", V2_QUERY),
        b"Hello from client!",
    ),
    "alb-request": (
        ("POST", "http", ("lambda-alb-123578498.us-east-2.elb.amazonaws.com", 80)),
        (("72.12.164.125", 0), "", "/path/to/resource", b"query=1234ABCD"),
        JSON_BODY,
    ),
    "alb-multi-value": (
        ("GET", "http", ("lambda-846800462-us-east-2.elb.amazonaws.com", 80)),
        (("72.12.164.125", 0), "", "/lambda", b"myKey=val1&myKey=val2"),
        b"",
    ),
    "lattice-v1": (
        ("POST", "https", (LATTICE_HOST, 443)),
        (("10.0.129.196", 0), "", "/path/to/resource", b"order-id=1"),
        JSON_BODY,
    ),
    "lattice-v2": (
        ("GET", "https", (LATTICE_HOST, 443)),
        (("10.0.129.196", 0), "", "/path/to/resource", b"order-id=1&order-id=2"),
        b"",
    ),
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED_SCOPES))
def test_each_sample_event_reaches_the_app_as_a_server_would_pass_it(
    fixture, make_adapter, recorder, context
):
    event = load_event(fixture)
    *values, body = EXPECTED_SCOPES[fixture]
    expected = dict(zip(SCOPE_KEYS, values[0] + values[1], strict=True))
    expected["raw_path"] = expected["path"].encode()  # the sample paths need no escaping

    make_adapter(recorder)(event, context)

    scope = recorder.scope
    assert {key: scope[key] for key in expected} == expected
    assert recorder.body == body
    assert scope["type"] == "http"
    assert scope["http_version"] == "1.1"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["aws.event"] is event
    assert scope["aws.context"] is context
    assert scope["state"] == {}


# Headers exactly as the app gets them: lower-case names, order and repeated values kept.
V2_HEADERS = [
    (b"header1", b"value1"),
    (b"header2", b"value1,value2"),
    (b"cookie", b"cookie1; cookie2"),
]
EXPECTED_HEADERS = {
    # The samples have a body but no Content-Length: the adapter adds it, as a client sends it.
    "apigateway-http-api": [*V2_HEADERS, (b"content-length", b"15")],
    "function-url": [*V2_HEADERS, (b"content-length", b"18")],
    "alb-multi-value": [
        (
            b"accept",
            b"text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,image/apng,*/*;q=0.8",
        ),
        (b"accept-encoding", b"gzip"),
        (b"accept-language", b"en-US,en;q=0.9"),
        (b"connection", b"keep-alive"),
        (b"cookie", b"name1=value1"),
        (b"cookie", b"name2=value2"),
        (b"host", b"lambda-846800462-us-east-2.elb.amazonaws.com"),
        (b"upgrade-insecure-requests", b"1"),
        (
            b"user-agent",
            b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
            b" Chrome/71.0.3578.98 Safari/537.36",
        ),
        (b"x-amzn-trace-id", b"Root=1-5c536348-3d683b8b04734faae651f476"),
        (b"x-forwarded-for", b"72.12.164.125"),
        (b"x-forwarded-port", b"80"),
        (b"x-forwarded-proto", b"http"),
    ],
    "lattice-v2": [
        (b"accept", b"*/*"),
        (b"host", LATTICE_HOST.encode()),
        (b"user-agent", b"curl/7.64.1"),
        (b"x-forwarded-for", b"10.0.129.196"),
        (b"x-custom", b"one"),
        (b"x-custom", b"two"),
    ],
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED_HEADERS))
def test_sample_event_headers_arrive_lower_case_with_repeats_in_order(
    fixture, make_adapter, recorder
):
    make_adapter(recorder)(load_event(fixture), None)
    assert client_headers(recorder.scope) == EXPECTED_HEADERS[fixture]


def test_rest_event_headers_come_from_multi_value_headers(make_adapter, recorder):
    # The sample's single-value and multi-value Host differ: multiValueHeaders is the full one.
    make_adapter(recorder)(load_event("apigateway-aws-proxy"), None)
    headers = client_headers(recorder.scope)
    assert (b"host", b"0123456789.execute-api.us-east-1.amazonaws.com") in headers
    assert [name for name, _ in headers] == [
        b"accept",
        b"accept-encoding",
        b"accept-language",
        b"cache-control",
        b"cloudfront-forwarded-proto",
        b"cloudfront-is-desktop-viewer",
        b"cloudfront-is-mobile-viewer",
        b"cloudfront-is-smarttv-viewer",
        b"cloudfront-is-tablet-viewer",
        b"cloudfront-viewer-country",
        b"host",
        b"upgrade-insecure-requests",
        b"user-agent",
        b"via",
        b"x-amz-cf-id",
        b"x-forwarded-for",
        b"x-forwarded-port",
        b"x-forwarded-proto",
        b"content-length",
    ]


RESPONSE_APP = responder(
    201,
    [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2; HttpOnly"),
        (b"x-multi", b"1"),
        (b"x-multi", b"2"),
    ],
    [b'{"ok":', b"true}"],
)

_MULTI = {
    "content-type": ["application/json"],
    "set-cookie": ["a=1; Path=/", "b=2; HttpOnly"],
    "x-multi": ["1", "2"],
}
_SINGLE = {
    "content-type": "application/json",
    "set-cookie": "a=1; Path=/",
    "set-cookiE": "b=2; HttpOnly",
    "x-multi": "1,2",
}
_V2 = {
    "statusCode": 201,
    "headers": {"content-type": "application/json", "x-multi": "1,2"},
    "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
    "body": '{"ok":true}',
    "isBase64Encoded": False,
}
_DESCRIBED = {"statusCode": 201, "statusDescription": "201 Created"}
_BODY = {"body": '{"ok":true}', "isBase64Encoded": False}

EXPECTED_RESPONSES = {
    "apigateway-aws-proxy": {
        "statusCode": 201,
        "headers": {
            "content-type": "application/json",
            "set-cookie": "b=2; HttpOnly",
            "x-multi": "2",
        },
        "multiValueHeaders": _MULTI,
        **_BODY,
    },
    "apigateway-http-api": _V2,
    "function-url": _V2,
    "alb-request": {**_DESCRIBED, "headers": _SINGLE, **_BODY},
    "alb-multi-value": {**_DESCRIBED, "multiValueHeaders": _MULTI, **_BODY},
    "lattice-v1": {**_DESCRIBED, "headers": _SINGLE, **_BODY},
    "lattice-v2": {**_DESCRIBED, "headers": _SINGLE, **_BODY},
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED_RESPONSES))
def test_each_source_gets_the_response_in_its_own_shape(fixture, make_adapter):
    result = make_adapter(RESPONSE_APP)(load_event(fixture), None)
    assert result == EXPECTED_RESPONSES[fixture]


def test_alb_answers_in_the_mode_the_event_came_in(make_adapter):
    handler = make_adapter(RESPONSE_APP)
    single = handler(load_event("alb-request"), None)
    multi = handler(load_event("alb-multi-value"), None)
    assert "multiValueHeaders" not in single
    assert single["headers"]["x-multi"] == "1,2"
    assert "headers" not in multi
    assert multi["multiValueHeaders"]["x-multi"] == ["1", "2"]
    assert single["statusDescription"] == multi["statusDescription"] == "201 Created"


@pytest.mark.parametrize(
    ("status", "description"),
    [(200, "200 OK"), (302, "302 Found"), (404, "404 Not Found"), (599, "599")],
)
@pytest.mark.parametrize("fixture", ["alb-request", "alb-multi-value", "lattice-v1", "lattice-v2"])
def test_status_description_names_the_status(fixture, status, description, make_adapter):
    result = make_adapter(responder(status))(load_event(fixture), None)
    assert result["statusCode"] == status
    assert result["statusDescription"] == description


def test_lattice_v1_raw_path_may_carry_the_query(make_adapter, recorder):
    event = load_event("lattice-v1")
    event["raw_path"] = "/path/to/resource?order-id=1&order-id=2&q=a%2Bb"
    make_adapter(recorder)(event, None)
    assert recorder.scope["path"] == "/path/to/resource"
    assert recorder.scope["query_string"] == b"order-id=1&order-id=2&q=a%2Bb"


def test_http_api_event_with_payload_format_1_is_read_as_rest_payload(make_adapter, recorder):
    # HTTP APIs can send payload format 1.0: REST's shape, with "version": "1.0" and a
    # decoded path.
    event = load_event("apigateway-aws-proxy")
    event["version"] = "1.0"
    event["path"] = event["requestContext"]["path"] = "/caf\u00e9 au lait"
    make_adapter(recorder)(event, None)
    assert recorder.scope["path"] == "/caf\u00e9 au lait"
    assert recorder.scope["raw_path"] == b"/caf%C3%A9%20au%20lait"


def test_samples_that_are_not_http_events_are_posted_to_the_pass_through_path(
    make_adapter, recorder
):
    handler = make_adapter(recorder)
    for fixture in ("sqs-receive-message", "eventbridge-scheduled-event"):
        assert handler(load_event(fixture), None) is None  # "ok" is not a JSON answer
        scope, body = recorder.requests[-1]
        assert (scope["method"], scope["path"]) == ("POST", "/events")
        assert json.loads(body) == load_event(fixture)


# REST: the path the client asked for is requestContext.path; "path" is below the stage or
# base path mapping. (path, requestContext.path) -> (scope path, root_path)
REST_PATHS = {
    "no requestContext.path": ("/a/b", None, "/a/b", ""),
    "a null requestContext.path": ("/a/b", "null", "/a/b", ""),
    "the same path": ("/a/b", "/a/b", "/a/b", ""),
    "the stage root, with a slash": ("/", "/prod/", "/prod/", "/prod"),
    "the stage root, without a slash": ("/", "/prod", "/prod/", "/prod"),
    "below the stage": ("/a/b", "/prod/a/b", "/prod/a/b", "/prod"),
    "a mapping that does not end with the path": ("/a/b", "/v1/other", "/a/b", ""),
}


@pytest.mark.parametrize("case", sorted(REST_PATHS))
def test_rest_paths_are_mounted_below_the_stage(make_adapter, recorder, case):
    path, requested, scope_path, root_path = REST_PATHS[case]
    event = load_event("apigateway-aws-proxy")
    event["path"] = path
    if requested is None:
        del event["requestContext"]["path"]
    else:
        event["requestContext"]["path"] = None if requested == "null" else requested
    assert make_adapter(recorder)(event, None)["statusCode"] == 200
    assert (recorder.scope["path"], recorder.scope["root_path"]) == (scope_path, root_path)


@pytest.mark.parametrize("cookies", ["a=1", [1], ["a=1", None], {"a": "1"}])
def test_v2_cookies_must_be_a_list_of_strings(make_adapter, recorder, cookies):
    event = load_event("apigateway-http-api")
    event["cookies"] = cookies
    with pytest.raises(InvalidEvent, match="'cookies' has the wrong type"):
        make_adapter(recorder)(event, None)
    assert recorder.requests == []


# -- header maps as hand-made events carry them (gaps mutation testing found) ------------------
def rest_without_headers():
    event = load_event("apigateway-aws-proxy")
    event["headers"] = event["multiValueHeaders"] = None
    event["body"] = ""
    return event


def test_rest_headers_in_the_single_value_form_only(make_adapter, recorder):
    event = rest_without_headers()
    event["headers"] = {"X-One": "1", "X-Two": "caf\u00e9"}
    make_adapter(recorder)(event, None)
    assert client_headers(recorder.scope) == [(b"x-one", b"1"), (b"x-two", b"caf\xe9")]


def test_rest_headers_found_only_in_the_single_value_form_are_kept(make_adapter, recorder):
    event = rest_without_headers()
    event["multiValueHeaders"] = {"X-One": ["1", "2"], "x-two": ["b"]}
    event["headers"] = {"X-One": "2", "X-Two": "a", "X-Three": "3"}
    make_adapter(recorder)(event, None)
    assert client_headers(recorder.scope) == [
        (b"x-one", b"1"),
        (b"x-one", b"2"),
        (b"x-two", b"b"),
        (b"x-three", b"3"),
    ]


MULTI_VALUES = {
    "null": (None, []),
    "a string": ("v w", [(b"x-a", b"v w")]),
    "a list with a null": (["v", None, "w"], [(b"x-a", b"v"), (b"x-a", b"w")]),
    "non-latin-1 text": (["\u2603"], [(b"x-a", "\u2603".encode())]),
}


@pytest.mark.parametrize("case", sorted(MULTI_VALUES))
def test_multi_value_header_values_of_every_shape(make_adapter, recorder, case):
    value, expected = MULTI_VALUES[case]
    event = rest_without_headers()
    # X-B's text outside latin-1 takes the decoder off its fast path for every header.
    event["multiValueHeaders"] = {"X-A": value, "X-B": ["\u2603"]}
    make_adapter(recorder)(event, None)
    assert client_headers(recorder.scope) == [*expected, (b"x-b", "\u2603".encode())]


BROKEN_HEADERS = {
    "a number in a multi-value list": ({"X-A": [1]}, "a header value has the wrong type"),
    "a number as multi values": ({"X-A": 1, "X-B": ["\u2603"]}, "'X-A' has the wrong type"),
    "an object as multi values": ({"X-A": {"a": "b"}}, "'X-A' has the wrong type"),
    "a name that is no string": ({1: ["a"]}, "a header name has the wrong type"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_HEADERS))
def test_multi_value_headers_of_the_wrong_type_are_invalid(make_adapter, recorder, case):
    headers, message = BROKEN_HEADERS[case]
    event = rest_without_headers()
    event["multiValueHeaders"] = headers
    with pytest.raises(InvalidEvent, match=message):
        make_adapter(recorder)(event, None)


def test_single_value_headers_that_are_no_object_are_invalid(make_adapter, recorder):
    event = load_event("apigateway-aws-proxy")
    event["headers"] = ["X-A"]
    with pytest.raises(InvalidEvent, match="'headers' has the wrong type"):
        make_adapter(recorder)(event, None)


def test_a_single_value_header_of_the_wrong_type_is_invalid(make_adapter, recorder):
    event = load_event("apigateway-http-api")
    event["headers"] = {"x-a": "\u2603", "x-b": 5}
    with pytest.raises(InvalidEvent, match="a header value has the wrong type"):
        make_adapter(recorder)(event, None)


def test_a_content_length_without_a_body_is_zero(make_adapter, recorder):
    event = rest_without_headers()
    event["headers"] = {"Content-Length": "5", "Transfer-Encoding": "chunked"}
    make_adapter(recorder)(event, None)
    assert client_headers(recorder.scope) == [(b"content-length", b"0")]
    event["headers"] = {"Transfer-Encoding": "chunked"}
    make_adapter(recorder)(event, None)
    assert client_headers(recorder.scope) == []


def test_a_second_host_is_dropped_and_forwarded_headers_keep_the_front_s_value(
    make_adapter, recorder, caplog
):
    event = load_event("alb-multi-value")
    event["multiValueHeaders"] = {
        "host": ["a.example:8080", "b.example"],
        "x-forwarded-proto": ["http", "https"],
        "x-forwarded-port": ["81", "82"],
        "x-forwarded-for": ["198.51.100.1", "198.51.100.2, 203.0.113.9"],
    }
    make_adapter(recorder)(event, None)
    scope = recorder.scope
    assert (scope["scheme"], scope["server"], scope["client"]) == (
        "http",
        ("a.example", 8080),
        ("203.0.113.9", 0),
    )
    assert [value for name, value in scope["headers"] if name == b"host"] == [b"a.example:8080"]
    assert "dropping a second Host header: b'b.example'" in caplog.text
    del event["multiValueHeaders"]["host"][0]
    make_adapter(recorder)(event, None)
    assert recorder.scope["server"] == ("b.example", 81)
