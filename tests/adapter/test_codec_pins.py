"""Pins on the codecs and their helpers, called directly: how a refusal is worded (and how much
of a bad name it quotes), what a codec made with its defaults does, each source's size limit at
its byte, Azure's event, the platform context header, and the caches' bounds. Pure functions:
no loop, no app."""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import pytest

from holdfast.errors import InvalidEvent
from holdfast.sources import BadRequest, bodies, headers, limits
from holdfast.sources.alb import ALB
from holdfast.sources.apigw_v1 import APIGatewayV1
from holdfast.sources.apigw_v2 import APIGatewayV2
from holdfast.sources.azure import AzureHTTP
from holdfast.sources.codec import as_invalid_event
from holdfast.sources.fields import mapping, method_of, optional_text
from holdfast.sources.headers import header_name
from holdfast.sources.lattice import VPCLattice
from holdfast.sources.messages import HTTPResponse
from holdfast.sources.platform import platform_headers
from holdfast.sources.query import query_from_decoded
from holdfast.sources.response_headers import header_text

_V2 = {
    "version": "2.0",
    "rawPath": "/p",
    "requestContext": {"http": {"method": "GET", "sourceIp": "203.0.113.9"}},
    "headers": {"host": "example.com"},
}


# -- codec: the refusal -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (TypeError("nope"), "X event: a field has the wrong type or value: nope"),
        (KeyError("k"), "X event: a field has the wrong type or value: 'k'"),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogate"), "X event: a field is not valid"),
        (RecursionError("deep"), "X event: a field is nested too deeply"),
    ],
)
def test_an_error_while_decoding_becomes_an_invalid_event_naming_the_source(exc, message):
    error = as_invalid_event("X", exc)
    assert type(error) is InvalidEvent
    assert str(error).startswith(message)
    assert error.__cause__ is exc


def test_an_invalid_event_keeps_its_class_and_gains_the_source():
    named = InvalidEvent("X event: already named")
    assert as_invalid_event("X", named) is named
    error = as_invalid_event("X", BadRequest("bad header"))
    assert type(error) is BadRequest
    assert str(error) == "X event: bad header"
    assert error.__suppress_context__


def test_decode_turns_every_malformed_field_into_an_invalid_event():
    # A header map whose value is a list: the fast path's TypeError, then the checked path's.
    event = {**_V2, "headers": {"host": ["a"]}}
    with pytest.raises(InvalidEvent, match=r"^HTTP API v2 event: "):
        APIGatewayV2().decode(event, "")
    with pytest.raises(InvalidEvent, match=r"^HTTP API v2 event: .*nested too deeply"):
        APIGatewayV2().decode({**_V2, "rawPath": _Deep()}, "")


class _Deep(str):
    """A field whose reading recurses without end, as a hostile nested value can."""

    def __bool__(self) -> bool:
        raise RecursionError("deep")


# -- codec: the defaults ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        APIGatewayV2,
        APIGatewayV1,
        lambda: ALB(multi_value=False, wsgi=False),
        lambda: VPCLattice(version="2.0", wsgi=False),
    ],
    ids=["apigw_v2", "apigw_v1", "alb", "lattice"],
)
def test_a_codec_made_with_its_defaults(make):
    codec = make()
    assert codec.wsgi is False
    assert codec.context_headers is False
    assert codec.text_mime_types == frozenset()
    # No extra text types: a body of an unknown media type goes out as base64.
    response = codec.encode(HTTPResponse(200, [(b"content-type", b"application/x-y")], b"\xff"))
    assert response["isBase64Encoded"] is True


def test_a_codec_made_with_options_keeps_them():
    codec = APIGatewayV2(frozenset({"application/x-y"}), wsgi=True, context_headers=True)
    assert (codec.text_mime_types, codec.wsgi, codec.context_headers) == (
        frozenset({"application/x-y"}),
        True,
        True,
    )
    request = codec.decode(_V2, "")
    assert any(name.startswith(b"x-amzn-") for name, _ in request.headers)
    plain = APIGatewayV2().decode(_V2, "")
    assert not any(name.startswith(b"x-amzn-") for name, _ in plain.headers)
    response = codec.encode(HTTPResponse(200, [(b"content-type", b"application/x-y")], b"ok"))
    assert response["body"] == "ok"
    assert response["isBase64Encoded"] is False


def test_each_codec_refuses_what_its_source_would_for_size():
    small = {"statusCode": 200, "body": "x" * 1000, "isBase64Encoded": False}
    big = {"statusCode": 200, "body": "x" * (1024 * 1024), "isBase64Encoded": False}
    assert not APIGatewayV2().too_large(small)
    assert not APIGatewayV2().too_large(big)  # 1 MB: within Lambda's 6 MB
    assert ALB(multi_value=False, wsgi=False).too_large(big)  # past ALB's 1 MB
    assert not ALB(multi_value=False, wsgi=False).too_large(small)


# -- response_headers ---------------------------------------------------------------------------
def test_a_response_header_value_that_is_not_utf8_goes_out_as_latin1():
    assert header_text("café".encode()) == "café"
    assert header_text(b"caf\xe9") == "café"  # a latin-1 value, as HTTP/1.1 servers send
    response = APIGatewayV2().encode(HTTPResponse(200, [(b"x-name", b"caf\xe9")], b""))
    assert response["headers"] == {"x-name": "café"}


# -- azure --------------------------------------------------------------------------------------
def _azure_event(**fields: Any) -> dict[str, Any]:
    return {"holdfast.azure": "http", "method": "GET", "url": "https://h/api/x", **fields}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ("accept", "'headers' has the wrong type: it must be a list of [name, value] pairs"),
        ([["accept"]], "a header has the wrong type: it must be a [name, value] pair"),
        (["ab"], "a header has the wrong type: it must be a [name, value] pair"),
        ([["accept", "a", "b"]], "a header has the wrong type: it must be a [name, value] pair"),
        ([["accept", 1]], "a header has the wrong type: it must be two strings"),
        ([[1, "x"]], "a header has the wrong type: it must be two strings"),
    ],
)
def test_azure_headers_must_be_name_value_pairs_of_strings(headers, message):
    with pytest.raises(InvalidEvent, match=re.escape(f"Azure Functions HTTP event: {message}")):
        AzureHTTP().decode(_azure_event(headers=headers), "")


def test_azure_headers_and_body_as_given():
    request = AzureHTTP().decode(
        _azure_event(headers=[("Accept", "a/b"), ["x-n", "v"]], body=b"hi"), ""
    )
    assert request.headers[:2] == [(b"accept", b"a/b"), (b"x-n", b"v")]
    assert request.body == b"hi"
    assert AzureHTTP().decode(_azure_event(headers=None), "").body == b""
    with pytest.raises(InvalidEvent, match="'body' has the wrong type: it must be bytes"):
        AzureHTTP().decode(_azure_event(body="text"), "")


class _Sized:
    """A body of a given length, without the memory."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


def test_azure_accepts_responses_up_to_the_workers_message_limit():
    assert not AzureHTTP().too_large({"body": _Sized(2**31 - 1)})
    assert AzureHTTP().too_large({"body": _Sized(2**31)})


# -- lattice ------------------------------------------------------------------------------------
def test_lattice_versions_by_the_events_shape():
    assert VPCLattice.detect_version({"raw_path": "/", "method": "GET"}) == 1
    v2 = {"method": "GET", "requestContext": {"serviceNetworkArn": "arn:x"}}
    assert VPCLattice.detect_version(v2) == 2
    assert VPCLattice.detect_version({"method": "GET", "requestContext": {}}) is None


# -- fields -------------------------------------------------------------------------------------
class _Text(str):
    pass


def test_optional_text_fields():
    assert optional_text({}, "k", "X") is None
    assert optional_text({"k": None}, "k", "X") is None
    assert optional_text({"k": "v"}, "k", "X") == "v"
    text = _Text("v")
    assert optional_text({"k": text}, "k", "X") is text
    for wrong in (5, b"v", ["v"]):
        with pytest.raises(InvalidEvent, match="X event: 'k' has the wrong type: it must be a str"):
            optional_text({"k": wrong}, "k", "X")


def test_a_minimal_http_api_event_decodes():
    # No domainName, stage, rawQueryString, sourceIp or body: each is optional.
    event = {"version": "2.0", "requestContext": {"http": {"method": "GET"}}}
    request = APIGatewayV2().decode(event, "")
    assert (request.method, request.path, request.query_string) == ("GET", "/", b"")
    assert request.client is None


def test_a_minimal_rest_event_decodes():
    # No identity (so no source IP), path, headers, parameters or body: each is optional.
    event = {"httpMethod": "GET", "requestContext": {}}
    request = APIGatewayV1().decode(event, "")
    assert (request.method, request.path, request.query_string) == ("GET", "/", b"")
    assert request.client is None
    event = {"httpMethod": "GET", "requestContext": {"identity": {"sourceIp": "203.0.113.9"}}}
    assert APIGatewayV1().decode(event, "").client == ("203.0.113.9", 0)


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (["not", "an", "object"], "'requestContext' has the wrong type"),
        ({"identity": ["a", "list"]}, "'identity' has the wrong type"),
    ],
)
def test_a_rest_events_context_of_the_wrong_type_is_refused_by_name(context, message):
    with pytest.raises(InvalidEvent, match=f"REST API v1 event: {message}"):
        APIGatewayV1().decode({"httpMethod": "GET", "requestContext": context}, "")


def test_an_object_field_may_be_any_mapping():
    headers = MappingProxyType({"Accept": "a/b"})
    assert mapping(headers, "headers") is headers
    event = {**_V2, "headers": headers}
    assert (b"accept", b"a/b") in APIGatewayV2().decode(event, "").headers


def test_a_bad_methods_refusal_quotes_its_first_40_characters():
    method = "BAD METHOD " + "x" * 60
    with pytest.raises(InvalidEvent) as refused:
        method_of(method, "X")
    assert f"the HTTP method {method[:40]!r} is not a token" in str(refused.value)


# -- query --------------------------------------------------------------------------------------
def test_a_bad_query_parameters_refusal_quotes_the_first_40_characters_of_its_name():
    name = "n" * 39 + "Q" + "z" * 20
    with pytest.raises(InvalidEvent) as refused:
        query_from_decoded({name: 5})
    assert f"'queryStringParameters': {name[:40]!r} has the wrong type" in str(refused.value)
    with pytest.raises(InvalidEvent) as refused:
        query_from_decoded({name: ["ok", 5]})
    assert f"a value of {name[:40]!r} has the wrong type" in str(refused.value)


# -- limits -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "name", "limit"),
    [
        (APIGatewayV2, "LAMBDA_RESPONSE_LIMIT", 6 * 1024 * 1024),
        (lambda: ALB(multi_value=False, wsgi=False), "ALB_RESPONSE_LIMIT", 1024 * 1024),
    ],
    ids=["lambda", "alb"],
)
def test_a_response_of_exactly_the_sources_limit_passes_one_byte_more_does_not(make, name, limit):
    codec = make()
    framing = len(json.dumps({"statusCode": 200, "body": ""}))
    at_limit = {"statusCode": 200, "body": "x" * (limit - framing)}
    past_limit = {"statusCode": 200, "body": "x" * (limit - framing + 1)}
    assert not codec.too_large(at_limit)
    assert codec.too_large(past_limit)
    # The named limit itself (a codec holds a copy made when its class was defined).
    assert not limits.exceeds(at_limit, getattr(limits, name))
    assert limits.exceeds(past_limit, getattr(limits, name))


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": 200, "headers": {"\U0001f642" * 300: ""}},
        {"statusCode": 200, "multiValueHeaders": {"\U0001f642" * 300: [""]}},
    ],
)
def test_the_size_limit_counts_header_names(result):
    size = len(json.dumps(result))
    assert not limits.exceeds(result, size)
    assert limits.exceeds(result, size - 1)


def test_the_raw_size_glance_allows_12_bytes_a_body_byte_and_24_a_header_byte():
    body = b"x" * 1000
    assert limits.clearly_within([], body, 512 + 12 * 1000)
    assert not limits.clearly_within([], body, 512 + 12 * 1000 - 1)
    headers = [(b"ab", b"cd")]  # 4 bytes, and 8 of punctuation
    assert limits.clearly_within(headers, b"", 512 + 24 * 12)
    assert not limits.clearly_within(headers, b"", 512 + 24 * 12 - 1)
    both = 512 + 12 * 1000 + 24 * 12
    assert limits.clearly_within(headers, body, both)
    assert not limits.clearly_within(headers, body, both - 1)


@pytest.mark.parametrize(("size", "status"), [(300_000, 200), (7_000_000, 413)])
def test_headers_too_large_for_the_glance_are_counted(size, status):
    import holdfast
    from lambda_events import http_event

    async def app(scope: dict, receive: object, send: Any) -> None:
        # 300 kB: past the glance's 24 bytes a byte for Lambda's 6 MiB, well within it encoded.
        headers = [(b"x-large", b"v" * size)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    handler = holdfast.Adapter(app, lifespan="off")
    try:
        assert handler(http_event("/"), None)["statusCode"] == status
    finally:
        handler.close()


# -- request ------------------------------------------------------------------------------------
def test_a_control_character_refusal_quotes_40_characters_of_the_header_name():
    name = "x-" + "n" * 37 + "q" + "z" * 20
    event = {**_V2, "headers": {"host": "example.com", name: "a\x01b"}}
    with pytest.raises(BadRequest) as refused:
        APIGatewayV2().decode(event, "")
    assert f"the value of the header {name[:40]!r} holds a control character" in str(refused.value)


# -- bodies -------------------------------------------------------------------------------------
def test_the_text_type_cache_stays_bounded_and_answers_the_same(monkeypatch):
    monkeypatch.setattr(bodies, "_text_types_seen", {})  # filled here, then the suite's again
    for number in range(300):
        headers = [(b"content-type", b"application/x-%d" % number)]
        assert bodies.is_text_body(headers) is False
        assert bodies.is_text_body(headers, frozenset({f"application/x-{number}"})) is True
    assert len(bodies._text_types_seen) <= 256
    assert bodies.is_text_body([(b"content-type", b"text/x-299; charset=x")]) is True
    assert bodies.is_text_body([(b"content-type", b"text/x-299; charset=x")]) is True


# -- apigw_v2 -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"version": "2.0"}, "'requestContext' must be a dict, it is missing"),
        ({"version": "2.0", "requestContext": []}, "'requestContext' has the wrong type"),
        ({"version": "2.0", "requestContext": {}}, "'http' must be a dict, it is missing"),
        ({"version": "2.0", "requestContext": {"http": {}}}, "'method' must be a str"),
    ],
)
def test_an_http_api_event_without_its_request_context_is_refused_by_name(event, message):
    with pytest.raises(InvalidEvent, match=re.escape(f"HTTP API v2 event: {message}")):
        APIGatewayV2().decode(event, "")
    ordered = OrderedDict({"http": OrderedDict({"method": "GET"})})
    assert APIGatewayV2().decode({"version": "2.0", "requestContext": ordered}, "").path == "/"


# -- platform -----------------------------------------------------------------------------------
class _Client:
    installation_id = "inst"
    app_title = "title"
    app_version_name = "1.0"
    app_version_code = "10"
    app_package_name = "pkg"


class _ClientContext:
    client = _Client()
    custom = {"k": "v"}
    env = {"platform": "x"}


class _Identity:
    cognito_identity_id = "id-1"
    cognito_identity_pool_id = None


class _Context:
    aws_request_id = "req-1"
    invoked_function_arn = "arn:fn"
    function_name = "fn"
    memory_limit_in_mb = "128"
    function_version = "$LATEST"
    log_stream_name = "stream"
    log_group_name = "group"
    client_context = _ClientContext()
    identity = _Identity()
    tenant_id: str | None = None
    _epoch_deadline_time_in_ms = 1_700_000_000_123

    def get_remaining_time_in_millis(self) -> int:
        raise AssertionError("the Runtime API's deadline is read first")


def _lambda_context(context: Any) -> dict[str, Any]:
    headers = dict(platform_headers({"requestContext": {"a": 1}}, context))
    assert json.loads(headers[b"x-amzn-request-context"]) == {"a": 1}
    document: dict[str, Any] = json.loads(headers[b"x-amzn-lambda-context"])
    return document


def test_the_lambda_context_header_carries_the_invocations_context():
    document = _lambda_context(_Context())
    assert document["request_id"] == "req-1"
    assert document["deadline"] == 1_700_000_000_123
    assert document["client_context"] == {
        "client": {
            "installationId": "inst",
            "appTitle": "title",
            "appVersionName": "1.0",
            "appVersionCode": "10",
            "appPackageName": "pkg",
        },
        "custom": {"k": "v"},
        "environment": {"platform": "x"},
    }
    assert document["identity"] == {"identity_id": "id-1", "identity_pool_id": None}
    assert document["env_config"]["memory"] == 128


def test_a_context_without_identity_ids_has_no_identity():
    context = _Context()
    context.identity = _Identity()
    context.identity.cognito_identity_id = None  # type: ignore[misc]
    assert _lambda_context(context)["identity"] is None


def test_a_deadline_in_the_older_runtime_field_is_read_too():
    class Older(_Context):
        _epoch_deadline_time_in_ms = None  # type: ignore[assignment]
        _deadline_ms = 1_700_000_000_456

    assert _lambda_context(Older())["deadline"] == 1_700_000_000_456


def test_a_tenant_id_that_is_no_header_value_is_not_forwarded(caplog):
    context = _Context()
    context.tenant_id = "bad\nvalue"
    with caplog.at_level("WARNING", logger="holdfast"):
        headers = dict(platform_headers({}, context))
    assert b"x-amz-tenant-id" not in headers
    assert "not forwarding a tenant id" in caplog.text
    context.tenant_id = "tenant-1"
    assert dict(platform_headers({}, context))[b"x-amz-tenant-id"] == b"tenant-1"


def test_a_memory_size_that_is_no_number_is_0():
    context = _Context()
    context.memory_limit_in_mb = None  # type: ignore[assignment]
    assert _lambda_context(context)["env_config"]["memory"] == 0
    context.memory_limit_in_mb = "lots"
    assert _lambda_context(context)["env_config"]["memory"] == 0


# -- headers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "error", "says"),
    [
        ("x-" + "n" * 37 + "\u0100" + "z" * 20, InvalidEvent, "is not latin-1 text"),
        ("x-" + "n" * 37 + "(" + "z" * 20, BadRequest, "is not an HTTP token"),
    ],
)
def test_a_bad_header_names_refusal_quotes_its_first_40_characters(name, error, says):
    with pytest.raises(error) as refused:
        header_name(name)
    assert f"the header name {name[:40]!r} {says}" in str(refused.value)


def test_the_header_name_cache_stays_bounded_and_answers_the_same(monkeypatch):
    monkeypatch.setattr(headers, "_header_names", {})  # filled here, then the suite's own again
    for number in range(5000):
        assert header_name(f"X-Name-{number}") == b"x-name-%d" % number
    assert len(headers._header_names) <= 4096
    assert header_name("X-Name-4999") == b"x-name-4999"


def test_a_multi_value_header_that_is_no_list_is_refused_by_its_first_40_characters():
    name = "x-" + "n" * 37 + "q" + "z" * 20
    with pytest.raises(InvalidEvent) as refused:
        headers.headers_from_multi({name: 5})
    assert f"'multiValueHeaders': {name[:40]!r} has the wrong type" in str(refused.value)
