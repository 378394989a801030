"""Pins on the sources helpers' edges, called directly: the boundaries of what a Host header, a
port, a path, a query, a body and a response size may be, each a fault the event-level tests
would let through. Pure functions: no loop, no app.
"""

from __future__ import annotations

import base64
import json

import pytest

from holdfast.errors import InvalidEvent
from holdfast.sources import addresses, bodies, fields, limits, paths, query, syntax
from holdfast.sources.messages import HTTPRequest, HTTPResponse


# -- addresses -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (b"example.com", ("example.com", None)),
        (b"example.com:8080", ("example.com", 8080)),
        (b"example.com:65535", ("example.com", 65535)),
        (b"example.com:65536", None),  # past the last port
        (b"example.com:0", ("example.com", 0)),
        (b"example.com:", ("example.com", None)),  # an empty port is no port (RFC 3986)
        (b"[::1]:443", ("::1", 443)),
        (b"[::1]", ("::1", None)),
        (b"[1.2.3]", None),  # brackets hold an IPv6 address or nothing
        (b"a..b", None),
        (b".a", None),
        (b"a.", ("a.", None)),  # a trailing dot is a fully qualified name
        (b"a b", None),
        (b"\xb2", None),
    ],
)
def test_host_headers_parse_as_a_server_would(value, parsed):
    assert addresses.parse_host(value) == parsed
    assert addresses.parse_host(value) == parsed  # the cached answer is the same


def test_the_host_cache_stays_bounded():
    for number in range(300):
        addresses.parse_host(b"host-%d.example" % number)
    assert len(addresses._hosts) <= 256
    assert addresses.parse_host(b"host-299.example") == ("host-299.example", None)


@pytest.mark.parametrize(
    ("proto", "scheme"),
    [
        (b"https", "https"),
        (b"http", "http"),
        (b"HTTP , https", "http"),  # the first entry, in any case
        (b"wss", "https"),  # neither: the default
        (b"", "https"),
        (None, "https"),
    ],
)
def test_forwarded_scheme(proto, scheme):
    assert addresses.forwarded_scheme(proto) == scheme
    assert addresses.forwarded_scheme(None, "http") == "http"


@pytest.mark.parametrize(
    ("host", "forwarded_port", "scheme", "server"),
    [
        (None, b"443", "https", None),
        (("h", 8080), b"443", "https", ("h", 8080)),  # the Host header's port wins
        (("h", None), b"8443, 443", "https", ("h", 8443)),
        (("h", None), b"nope", "https", ("h", 443)),
        (("h", None), b"99999", "http", ("h", 80)),
        (("h", None), None, "http", ("h", 80)),
        (("h", None), None, "https", ("h", 443)),
    ],
)
def test_server_address(host, forwarded_port, scheme, server):
    assert addresses.server_address(host, forwarded_port, scheme) == server


def test_client_address_trusts_the_source_ip_then_the_last_forwarded_entry():
    assert addresses.client_address(b"1.1.1.1, 2.2.2.2", "3.3.3.3") == ("3.3.3.3", 0)
    assert addresses.client_address(b"1.1.1.1, 2.2.2.2 ", None) == ("2.2.2.2", 0)
    assert addresses.client_address(b"1.1.1.1, ", None) is None
    assert addresses.client_address(None, None) is None
    assert addresses.client_address(None, "") is None
    with pytest.raises(InvalidEvent, match="source IP"):
        addresses.client_address(None, "\ud800")


# -- syntax --------------------------------------------------------------------------------------
def test_tokens_and_control_characters():
    assert syntax.is_token(b"X-Custom_1")
    assert not syntax.is_token(b"X Custom")
    assert not syntax.is_token(b"")
    assert not syntax.has_control(b"a\tb")  # HTAB is allowed
    for control in (b"\x00", b"\x08", b"\n", b"\r", b"\x1f", b"\x7f"):
        assert syntax.has_control(b"a" + control)
    assert not syntax.has_control(b" ~\x80")
    for byte in range(256):  # each byte alone, and among others
        control = (byte < 0x20 and byte != 0x09) or byte == 0x7F
        assert syntax.has_control(bytes([byte])) is control, byte
        assert syntax.has_control(b"ab" + bytes([byte]) + b"cd") is control, byte


# -- fields --------------------------------------------------------------------------------------
def test_fields_are_checked_for_their_type():
    event = {"a": "x", "n": None, "i": 1}
    assert fields.require(event, "a", str, "test") == "x"
    with pytest.raises(InvalidEvent, match="'n' must be a str, it is missing"):
        fields.require(event, "n", str, "test")
    with pytest.raises(InvalidEvent, match="'i' has the wrong type: it must be a str, it is a int"):
        fields.require(event, "i", str, "test")
    assert fields.optional(event, "n", str, "test") is None
    assert fields.optional(event, "a", str, "test") == "x"
    with pytest.raises(InvalidEvent):
        fields.optional(event, "i", str, "test")
    assert fields.mapping(None, "k") == {}
    assert fields.mapping({"a": 1}, "k") == {"a": 1}
    with pytest.raises(InvalidEvent, match="must be an object"):
        fields.mapping([], "k")


@pytest.mark.parametrize(
    ("given", "method"), [("get", "GET"), ("POST", "POST"), ("purge", "PURGE"), ("M-1", "M-1")]
)
def test_methods_are_upper_case_tokens(given, method):
    assert fields.method_of(given, "test") == method


def test_a_method_that_is_no_token_is_invalid():
    with pytest.raises(InvalidEvent, match="is not a token"):
        fields.method_of("GE T", "test")


# -- paths ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "encoded", "mount", "base", "split"),
    [
        ("a/b", True, "", "", ("/a/b", b"/a/b", "")),
        ("/a%20b", True, "", "", ("/a b", b"/a%20b", "")),
        ("/a b", False, "", "", ("/a b", b"/a%20b", "")),
        ("/plain", False, "", "", ("/plain", b"/plain", "")),
        ("/prod/api/x", True, "/prod", "/api", ("/prod/api/x", b"/prod/api/x", "/prod/api")),
        ("/prod/apix", True, "/prod", "/api", ("/prod/apix", b"/prod/apix", "/prod")),
        ("/api", False, "", "/api", ("/api/", b"/api/", "/api")),  # the base is the app's root
        ("/prod", True, "/prod", "", ("/prod", b"/prod", "/prod")),
        ("/other", True, "", "/api", ("/other", b"/other", "")),
    ],
)
def test_split_path(path, encoded, mount, base, split):
    assert paths.split_path(path, encoded=encoded, mount=mount, base_path=base) == split


def test_a_decoded_path_with_a_lone_surrogate_is_invalid():
    with pytest.raises(InvalidEvent, match="the path"):
        paths.split_path("/\ud800", encoded=False)


# -- query ---------------------------------------------------------------------------------------
def test_query_from_decoded_parameters():
    assert query.query_from_decoded(None) == b""
    assert query.query_from_decoded({}) == b""
    params = {"a": "1", "b": ["x y", "+"], "c": None, "d": [None], "é": "ü"}
    assert query.query_from_decoded(params) == b"a=1&b=x+y&b=%2B&c=&d=&%C3%A9=%C3%BC"
    with pytest.raises(InvalidEvent, match="wrong type"):
        query.query_from_decoded({"a": 1})
    with pytest.raises(InvalidEvent, match="wrong type"):
        query.query_from_decoded({"a": [1]})
    with pytest.raises(InvalidEvent, match="lone surrogate"):
        query.query_from_decoded({"a": "\ud800"})


def test_query_from_encoded_parameters():
    assert query.query_from_encoded(None) == b""
    assert query.query_from_encoded({"a": "1", "flag": "", "b": ["x%20y", "z"]}) == (
        b"a=1&flag&b=x%20y&b=z"
    )


def test_merged_parameters_prefer_the_multi_value_form():
    merged = query.merged_params({"a": "single", "b": "only"}, {"a": ["m1", "m2"]})
    assert merged == {"a": ["m1", "m2"], "b": "only"}


def test_as_sent_escapes_only_what_is_not_visible_ascii():
    assert query.as_sent("a=%20&b=~") == b"a=%20&b=~"
    assert query.as_sent("a=é b") == b"a=%C3%A9%20b"
    with pytest.raises(InvalidEvent, match="the path"):
        query.as_sent("\ud800", "the path")


# -- bodies --------------------------------------------------------------------------------------
def test_request_bodies():
    assert bodies.request_body({}, "body", "b64") == b""
    assert bodies.request_body({"body": ""}, "body", "b64") == b""
    assert bodies.request_body({"body": "hé"}, "body", "b64") == "hé".encode()
    assert bodies.request_body({"body": "aGk=", "b64": True}, "body", "b64") == b"hi"
    assert bodies.request_body({"body": "aGk=", "b64": False}, "body", "b64") == b"aGk="
    with pytest.raises(InvalidEvent, match="not valid base64"):
        bodies.request_body({"body": "a!", "b64": True}, "body", "b64")
    with pytest.raises(InvalidEvent, match="wrong type"):
        bodies.request_body({"body": 1}, "body", "b64")


@pytest.mark.parametrize(
    ("headers", "text"),
    [
        ([], None),
        ([(b"content-type", b"text/html; charset=utf-8")], True),
        ([(b"content-type", b"Application/JSON")], True),
        ([(b"content-type", b"application/problem+json")], True),
        ([(b"content-type", b"application/atom+xml")], True),
        ([(b"content-type", b"image/png")], False),
        ([(b"content-type", b"text/plain"), (b"content-encoding", b"gzip")], False),
        ([(b"content-encoding", b"identity"), (b"content-type", b"text/plain")], True),
        ([(b"content-encoding", b""), (b"content-type", b"text/plain")], True),
    ],
)
def test_which_bodies_are_text(headers, text):
    assert bodies.is_text_body(headers) is text


def test_extra_text_types_and_body_encoding():
    csv = [(b"content-type", b"text/csv")]
    custom = [(b"content-type", b"application/x-mine")]
    assert bodies.is_text_body(custom, frozenset({"application/x-mine"})) is True
    assert bodies.encode_body(b"", custom) == ("", False)
    assert bodies.encode_body(b"a,b", csv) == ("a,b", False)
    assert bodies.encode_body(b"a", custom) == (base64.b64encode(b"a").decode(), True)
    assert bodies.encode_body(b"a", custom, frozenset({"application/x-mine"})) == ("a", False)
    assert bodies.encode_body(b"\xff", csv) == ("/w==", True)  # not UTF-8: base64 after all
    assert bodies.encode_body(b"plain", []) == ("plain", False)  # no type: decodable is text


# -- messages ------------------------------------------------------------------------------------
def test_records_compare_and_print_by_their_fields():
    response = HTTPResponse(200, [(b"a", b"b")], b"x")
    assert response == HTTPResponse(200, [(b"a", b"b")], b"x")
    assert response != HTTPResponse(201, [(b"a", b"b")], b"x")
    assert response != "HTTPResponse"
    assert repr(response) == "HTTPResponse(body=b'x', headers=[(b'a', b'b')], status=200)"
    request = HTTPRequest("GET", "https", None, None, "", "/", b"/", b"", [], b"")
    assert request != response
    assert "method='GET'" in repr(request)


# -- limits --------------------------------------------------------------------------------------
def _posted_size(result: dict) -> int:
    return len(json.dumps(result))


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": 200, "body": "x" * 1000},
        {"statusCode": 200, "body": "\U0001f642" * 1000},  # 12 bytes each, escaped
        {"statusCode": 200, "body": "\x01" * 1000},  # 6 bytes each, escaped
        {"statusCode": 200, "body": "eA==" * 250, "isBase64Encoded": True},
        {"statusCode": 200, "headers": {"\x01" * 300: "\x01" * 300}},
        {"statusCode": 200, "multiValueHeaders": {"\x01" * 300: ["\x01" * 300, "\x01"]}},
        {"statusCode": 200, "cookies": ["\x01" * 300, "\x01" * 10]},
    ],
)
def test_the_size_limit_is_counted_on_the_posted_json(result):
    size = _posted_size(result)
    assert limits.exceeds(result, size) is False
    assert limits.exceeds(result, size - 1) is True
