"""Odd inputs, each with its documented answer: malformed fields are an ``InvalidEvent``,
headers no front would deliver are corrected, sibling fields that disagree are merged as the
source would, and the platform context headers cannot be forged."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qsl

import pytest
from adapter_apps import LambdaContext, client_headers
from adapter_events import SOURCES, Request, event_with, function_url_event, load_event
from echo_apps import RUNTIMES, fastapi_app, flask_app

import holdfast
from holdfast.emulator import ThreadedEmulator
from holdfast.sources import platform as platform_module
from holdfast.sources.platform import (
    _client_context,
    _deadline_ms,
    _identity,
    _json,
    _lambda_context_json,
    _memory,
    _text,
    platform_headers,
)

HERE = Path(__file__).parent

ALL = sorted(SOURCES)


def header(scope, name: bytes) -> list[bytes]:
    return [value for key, value in scope["headers"] if key == name]


# -- malformed fields: InvalidEvent ---------------------------------------------------------------

MALFORMED = {
    "v2-body-lone-surrogate": (event_with("function-url", ["body"], "\ud800"), "lone surrogate"),
    "v2-path-lone-surrogate": (
        event_with("apigateway-http-api", ["rawPath"], "/\udfff"),
        "surrogate",
    ),
    "v2-query-lone-surrogate": (
        event_with("function-url", ["rawQueryString"], "a=\ud800"),
        "surrogate",
    ),
    "v2-header-lone-surrogate": (
        event_with("function-url", ["headers", "x"], "\ud800"),
        "surrogate",
    ),
    "v1-query-lone-surrogate": (
        event_with("apigateway-aws-proxy", ["multiValueQueryStringParameters", "q"], ["\ud800"]),
        "surrogate",
    ),
    "alb-path-lone-surrogate": (event_with("alb-request", ["path"], "/a\ud800"), "surrogate"),
    "v2-header-name-not-latin-1": (
        event_with("function-url", ["headers", "h\u00e9\u2603"], "x"),
        "not latin-1",
    ),
    "v2-header-value-null-list": (event_with("function-url", ["headers", "x"], [1]), "wrong type"),
    "v2-header-value-number": (event_with("function-url", ["headers", "x"], 5), "wrong type"),
    "v2-cookies-not-strings": (event_with("function-url", ["cookies"], [1, 2]), "wrong type"),
    "v2-raw-path-number": (event_with("function-url", ["rawPath"], 12), "wrong type"),
    "v2-source-ip-list": (
        event_with("function-url", ["requestContext", "http", "sourceIp"], ["1.2.3.4"]),
        "wrong type",
    ),
    "v1-path-object": (event_with("apigateway-aws-proxy", ["path"], {"a": 1}), "wrong type"),
    "alb-query-value-number": (
        event_with("alb-request", ["queryStringParameters", "a"], 1),
        "wrong type",
    ),
    "v1-method-with-space": (event_with("apigateway-aws-proxy", ["httpMethod"], "GE T"), "token"),
    "v2-method-empty": (
        event_with("function-url", ["requestContext", "http", "method"], ""),
        "token",
    ),
    "lattice-v2-headers-list": (event_with("lattice-v2", ["headers"], ["x"]), "wrong type"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_fields_raise_invalid_event(name, make_adapter, recorder):
    event, message = MALFORMED[name]
    with pytest.raises(holdfast.InvalidEvent) as caught:
        make_adapter(recorder)(event, None)
    assert message in str(caught.value)
    assert recorder.requests == []


def test_null_headers_and_values_are_absent(make_adapter, recorder):
    event = function_url_event(Request(headers=(("x-a", "1"),)))
    event["headers"]["x-null"] = None
    make_adapter(recorder)(event, None)
    assert [name for name, _ in client_headers(recorder.scope)] == [b"x-a"]


# -- headers no front would deliver: corrected --------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "example.com:-1",
        "example.com:\u00b2",
        "example.com:99999",
        "a b",
        "[nope]:80",
        "",
        ".",
        "a..b",
    ],
)
@pytest.mark.parametrize("source", ALL)
def test_an_invalid_host_header_is_dropped(source, host, make_adapter, recorder, caplog):
    make_adapter(recorder)(SOURCES[source](Request(headers=(("host", host),))), None)
    assert header(recorder.scope, b"host") == []
    assert recorder.scope["server"] is None
    assert "dropping a Host header" in caplog.text


@pytest.mark.parametrize(
    ("host", "forwarded_port", "server"),
    [
        ("example.com", None, ("example.com", 443)),
        ("example.com:8443", "1", ("example.com", 8443)),
        ("example.com", "8080", ("example.com", 8080)),
        ("example.com", "9" * 5000, ("example.com", 443)),
        ("example.com", "\u00b2", ("example.com", 443)),
        ("example.com", "-1", ("example.com", 443)),
        ("example.com", "70000", ("example.com", 443)),
        ("[::1]:8000", None, ("::1", 8000)),
        ("127.0.0.1", None, ("127.0.0.1", 443)),
    ],
)
def test_server_comes_from_a_valid_host_and_port(
    host, forwarded_port, server, make_adapter, recorder
):
    headers = [("host", host)]
    if forwarded_port is not None:
        headers.append(("x-forwarded-port", forwarded_port))
    make_adapter(recorder)(function_url_event(Request(headers=tuple(headers))), None)
    assert recorder.scope["server"] == server


@pytest.mark.parametrize(
    ("proto", "scheme"),
    [("javascript", "http"), ("HTTPS, http", "https"), ("\u00e9", "http"), ("", "http")],
)
def test_only_http_and_https_are_taken_from_x_forwarded_proto(
    proto, scheme, make_adapter, recorder
):
    event = SOURCES["alb"](Request(headers=(("x-forwarded-proto", proto),)))
    make_adapter(recorder)(event, None)
    assert recorder.scope["scheme"] == scheme


def test_content_length_is_the_body_length_whatever_the_event_says(make_adapter, recorder):
    headers = (("content-length", "5"), ("content-length", "abc"), ("transfer-encoding", "chunked"))
    event = SOURCES["rest-v1"](Request("POST", headers=headers, body=b"0123456789"))
    make_adapter(recorder)(event, None)
    assert header(recorder.scope, b"content-length") == [b"10"]
    assert header(recorder.scope, b"transfer-encoding") == []


@pytest.mark.parametrize("source", ALL)
def test_raw_non_ascii_in_the_query_is_percent_encoded(source, make_adapter, recorder):
    event = SOURCES[source](Request(target="/q?q=caf\u00e9 au lait&x=%41"))
    if source in ("function-url", "http-api-v2"):
        event["rawQueryString"] = "q=caf\u00e9 au lait&x=%41"
    elif source.startswith("alb"):
        key = "multiValueQueryStringParameters" if "multi" in source else "queryStringParameters"
        event[key] = {
            "q": ["caf\u00e9 au lait"] if "multi" in source else "caf\u00e9 au lait",
            "x": "%41",
        }
    make_adapter(recorder)(event, None)
    query = recorder.scope["query_string"]
    assert query.isascii()
    assert dict(parse_qsl(query.decode())) == {"q": "caf\u00e9 au lait", "x": "A"}


# -- sibling fields that disagree: merged as the source would --------------------------------


def test_rest_header_only_in_headers_is_kept(make_adapter, recorder):
    event = load_event("apigateway-aws-proxy")
    event["headers"]["X-Only-Single"] = "kept"
    make_adapter(recorder)(event, None)
    assert header(recorder.scope, b"x-only-single") == [b"kept"]
    # A name in both keeps the multi-value form's values only.
    assert header(recorder.scope, b"host") == [b"0123456789.execute-api.us-east-1.amazonaws.com"]


def test_rest_query_key_only_in_single_value_parameters_is_kept(make_adapter, recorder):
    event = load_event("apigateway-aws-proxy")
    event["multiValueQueryStringParameters"] = {"a": ["1", "2"]}
    event["queryStringParameters"] = {"a": "2", "b": "3"}
    make_adapter(recorder)(event, None)
    assert recorder.scope["query_string"] == b"a=1&a=2&b=3"


def test_alb_multi_value_event_with_only_single_value_query_keeps_it(make_adapter, recorder):
    event = load_event("alb-multi-value")
    event.pop("multiValueQueryStringParameters", None)
    event["queryStringParameters"] = {"q": "x%20y"}
    make_adapter(recorder)(event, None)
    assert recorder.scope["query_string"] == b"q=x%20y"


def test_alb_multi_value_event_keeps_a_header_only_in_headers(make_adapter, recorder):
    event = load_event("alb-multi-value")
    event["headers"] = {"x-single": "yes"}
    make_adapter(recorder)(event, None)
    assert header(recorder.scope, b"x-single") == [b"yes"]


def test_v2_cookie_header_and_cookies_array_make_one_cookie_header(make_adapter, recorder):
    event = function_url_event(Request(headers=(("cookie", "a=1"),)))
    event["headers"]["cookie"] = "a=1"
    event["cookies"] = ["b=2", "c=3"]
    make_adapter(recorder)(event, None)
    assert header(recorder.scope, b"cookie") == [b"a=1; b=2; c=3"]


# -- platform context headers: from the real event and context, never the client's ---------


class TenantContext(LambdaContext):
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:holdfast-test"
    function_version = "$LATEST"
    log_group_name = "/aws/lambda/holdfast-test"
    log_stream_name = "2026/12/01/[$LATEST]abc"
    client_context = None
    identity = None

    def __init__(self, tenant_id=None):
        super().__init__()
        self.tenant_id = tenant_id


FORGED = (
    ("x-amzn-request-context", '{"authorizer": {"claims": {"sub": "admin"}}}'),
    ("X-Amzn-Lambda-Context", '{"request_id": "forged"}'),
    ("x-amz-tenant-id", "someone-else"),
)


@pytest.mark.parametrize("source", ALL)
def test_forged_context_headers_are_replaced(source, make_adapter, recorder):
    event = SOURCES[source](Request(headers=FORGED))
    make_adapter(recorder, context_headers=True)(event, TenantContext("tenant-7"))
    scope = recorder.scope
    [lambda_header] = header(scope, b"x-amzn-lambda-context")
    assert json.loads(lambda_header)["request_id"] == "4d8a6c1e-req-0001"
    assert header(scope, b"x-amz-tenant-id") == [b"tenant-7"]
    request_context = header(scope, b"x-amzn-request-context")
    if "requestContext" in event:
        assert [json.loads(value) for value in request_context] == [event["requestContext"]]
    else:  # VPC Lattice v1 has no request context
        assert request_context == []


def test_without_a_tenant_the_client_tenant_header_is_still_dropped(make_adapter, recorder):
    make_adapter(recorder, context_headers=True)(
        function_url_event(Request(headers=FORGED)), TenantContext()
    )
    assert header(recorder.scope, b"x-amz-tenant-id") == []


@pytest.mark.parametrize("tenant", ["bad\nvalue", "\u00e9t\u00e9", " padded"])
def test_a_tenant_id_that_is_not_a_header_value_is_not_forwarded(tenant, make_adapter, recorder):
    make_adapter(recorder, context_headers=True)(
        function_url_event(Request()), TenantContext(tenant)
    )
    assert header(recorder.scope, b"x-amz-tenant-id") == []


def test_the_lambda_context_header_has_the_web_adapters_keys():
    before = int(time.time() * 1000)
    document = json.loads(_lambda_context_json(TenantContext("t1")))
    assert set(document) == {
        "request_id",
        "deadline",
        "invoked_function_arn",
        "xray_trace_id",
        "client_context",
        "identity",
        "env_config",
        "tenant_id",
    }
    assert set(document["env_config"]) == {
        "function_name",
        "memory",
        "version",
        "log_stream",
        "log_group",
    }
    assert before + 29_000 <= document["deadline"] <= int(time.time() * 1000) + 30_000
    assert document["env_config"]["memory"] == 128
    assert document["tenant_id"] == "t1"


def test_context_header_values_are_plain_ascii_whatever_the_event_holds():
    event = load_event("function-url")
    event["requestContext"]["http"]["path"] = "/\x00\x1b\u00e9\ud800\n"
    [(name, value)] = platform_headers(event, None)
    assert name == b"x-amzn-request-context"
    assert all(0x20 <= byte < 0x7F for byte in value)
    assert json.loads(value)["http"]["path"] == "/\x00\x1b\u00e9\ud800\n"


# -- end to end: WSGI and ASGI apps, and the context headers under real runtimes --------------


@pytest.mark.parametrize("app", [fastapi_app, flask_app], ids=["fastapi", "flask"])
@pytest.mark.parametrize("source", ["function-url", "alb", "rest-v1"])
def test_a_raw_non_ascii_query_reaches_framework_apps_decoded(app, source, make_adapter):
    event = SOURCES[source](Request(target="/q", headers=(("host", "api.example.com"),)))
    if source == "function-url":
        event["rawQueryString"] = "q=caf\u00e9&x=1 2"
    elif source == "alb":
        event["queryStringParameters"] = {"q": "caf\u00e9", "x": "1 2"}
    else:
        event["multiValueQueryStringParameters"] = {"q": ["caf\u00e9"], "x": ["1 2"]}
    result = make_adapter(app)(event, LambdaContext())
    assert result["statusCode"] == 200
    assert sorted(map(tuple, json.loads(result["body"])["query"])) == [
        ("q", "caf\u00e9"),
        ("x", "1 2"),
    ]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_context_headers_come_from_the_real_invocation(runtime):
    event = function_url_event(Request(target="/ctx", headers=FORGED))
    command = [sys.executable, *RUNTIMES[runtime]]
    environment = {"HOLDFAST_CONTEXT_HEADERS": "true"}
    with ThreadedEmulator(
        command, cwd=str(HERE), env=environment, log=lambda line: None
    ) as emulator:
        before = int(time.time() * 1000)
        plain = emulator.invoke(event)
        tenant = emulator.invoke(event, tenant_id="tenant-42")
    for result in (plain, tenant):
        assert result.ok, result.payload
    headers = {}
    for result in (plain, tenant):
        echoed = json.loads(result.json()["body"])["headers"]
        names = [name for name, _ in echoed]
        for name in ("x-amzn-request-context", "x-amzn-lambda-context"):
            assert names.count(name) == 1  # the client's copy is gone
        headers[result.request_id] = dict(echoed)
    context = json.loads(headers[plain.request_id]["x-amzn-lambda-context"])
    assert context["request_id"] == plain.request_id
    assert before < context["deadline"] <= before + 10 * 60 * 1000
    assert context["invoked_function_arn"].startswith("arn:aws:lambda:")
    assert context["env_config"]["function_name"]
    request_context = json.loads(headers[plain.request_id]["x-amzn-request-context"])
    assert request_context == event["requestContext"]
    assert "x-amz-tenant-id" not in headers[plain.request_id]
    assert headers[tenant.request_id]["x-amz-tenant-id"] == "tenant-42"
    assert (
        json.loads(headers[tenant.request_id]["x-amzn-lambda-context"])["tenant_id"] == "tenant-42"
    )


def test_an_absurdly_deep_request_context_still_gets_an_answer(make_adapter, recorder):
    event = function_url_event(Request())
    deep: dict = {}
    for _ in range(20_000):
        deep = {"d": deep}
    event["requestContext"]["authorizer"] = deep
    result = make_adapter(recorder, context_headers=True)(event, LambdaContext())
    assert result["statusCode"] == 200
    assert header(recorder.scope, b"x-amzn-request-context") == [b"null"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_an_oversized_response_is_a_413_not_a_refused_payload(runtime):
    command = [sys.executable, *RUNTIMES[runtime]]
    with ThreadedEmulator(command, cwd=str(HERE), log=lambda line: None) as emulator:
        result = emulator.invoke(function_url_event(Request(target="/oversized")))
        after = emulator.invoke(function_url_event(Request(target="/ok")))
    assert result.ok, result.payload[:300]  # answered, not a function error or a refused payload
    answer = result.json()
    assert (answer["statusCode"], answer["body"]) == (413, "Response payload too large")
    assert after.ok and after.json()["statusCode"] == 200


@pytest.mark.parametrize("trace", ["", "Root=1-%s;Parent=%d"])
@pytest.mark.parametrize(
    "context",
    [
        SimpleNamespace(
            aws_request_id="r%s1",
            invoked_function_arn="arn:%d:\u00e9",
            function_name="f%",
            memory_limit_in_mb="128",
            function_version="$LATEST",
            log_stream_name="s",
            log_group_name="g",
            tenant_id="t1",
            client_context=None,
            identity=None,
            _epoch_deadline_time_in_ms=5,
        ),
        SimpleNamespace(
            aws_request_id="x",
            _deadline_ms=7,
            identity=SimpleNamespace(cognito_identity_id="i%s", cognito_identity_pool_id=None),
            client_context=SimpleNamespace(
                client=SimpleNamespace(installation_id="a"), custom={"k": "%s"}, env={"e": 1}
            ),
        ),
        SimpleNamespace(),
    ],
)
def test_the_lambda_context_header_is_the_json_of_its_document(context, trace, monkeypatch):
    # The header is assembled from a per-environment template for speed; it must stay the plain
    # JSON of the document it stands for, whatever '%' or non-ASCII text the context holds.
    monkeypatch.setenv("_X_AMZN_TRACE_ID", trace)
    # A context with no deadline stands for "now": one clock reading for both sides.
    monkeypatch.setattr(platform_module, "time", SimpleNamespace(time=lambda: 1_800_000_000.25))
    assert _lambda_context_json(context) == _json(lambda_context(context))


def lambda_context(context) -> dict:
    """The x-amzn-lambda-context document, written out plainly: the oracle for the template."""
    return {
        "request_id": _text(context, "aws_request_id") or "",
        "deadline": _deadline_ms(context),
        "invoked_function_arn": _text(context, "invoked_function_arn") or "",
        "xray_trace_id": os.environ.get("_X_AMZN_TRACE_ID", ""),
        "client_context": _client_context(getattr(context, "client_context", None)),
        "identity": _identity(getattr(context, "identity", None)),
        "env_config": {
            "function_name": _text(context, "function_name") or "",
            "memory": _memory(getattr(context, "memory_limit_in_mb", None)),
            "version": _text(context, "function_version") or "",
            "log_stream": _text(context, "log_stream_name") or "",
            "log_group": _text(context, "log_group_name") or "",
        },
        "tenant_id": _text(context, "tenant_id"),
    }
