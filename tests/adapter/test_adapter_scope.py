"""The ASGI scope, built from one request as each source delivers it: the same scope a real
server (uvicorn) would give the app, wherever the source's encoding keeps the information."""

from __future__ import annotations

import base64

import pytest
from adapter_apps import client_headers
from adapter_events import (
    CLIENT_IP,
    SOURCES,
    Request,
    function_url_event,
    http_api_event,
    load_event,
    rest_event,
)

import holdfast

ALL = sorted(SOURCES)
# Sources that deliver the path percent-encoded as the client sent it.
ENCODED_PATH = [name for name in ALL if name != "http-api-v2"]
# Sources that keep repeated header values apart (the others comma-join them).
GROUPED_HEADERS = ["rest-v1", "alb-multi-value", "lattice-v2"]
# Sources whose query parameters keep every value of a repeated key.
ALL_QUERY_VALUES = ["rest-v1", "http-api-v2", "function-url", "alb-multi-value", "lattice-v2"]

HOST = ("host", "api.example.com")


def scope_for_event(event, make_adapter, recorder, **options):
    make_adapter(recorder, **options)(event, None)
    return recorder.scope


def scope_for(source, request, make_adapter, recorder, **options):
    return scope_for_event(SOURCES[source](request), make_adapter, recorder, **options)


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
def test_method(source, method, make_adapter, recorder):
    assert scope_for(source, Request(method, "/m"), make_adapter, recorder)["method"] == method


@pytest.mark.parametrize("source", ALL)
def test_lower_case_method_is_upper_cased(source, make_adapter, recorder):
    assert scope_for(source, Request("patch", "/m"), make_adapter, recorder)["method"] == "PATCH"


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("proto", ["http", "https"])
def test_scheme_comes_from_x_forwarded_proto(source, proto, make_adapter, recorder):
    request = Request(headers=(HOST, ("X-Forwarded-Proto", proto)))
    assert scope_for(source, request, make_adapter, recorder)["scheme"] == proto


@pytest.mark.parametrize(
    ("source", "scheme"),
    [(name, "http" if name.startswith("alb") else "https") for name in ALL],
)
def test_scheme_without_x_forwarded_proto(source, scheme, make_adapter, recorder):
    # API Gateway, Function URLs and Lattice listeners serve HTTPS; an ALB listener may be HTTP.
    assert scope_for(source, Request(headers=(HOST,)), make_adapter, recorder)["scheme"] == scheme


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize(
    ("headers", "server"),
    [
        ((HOST, ("x-forwarded-proto", "https")), ("api.example.com", 443)),
        ((HOST, ("x-forwarded-proto", "http")), ("api.example.com", 80)),
        (
            (("Host", "api.example.com:8443"), ("x-forwarded-proto", "https")),
            ("api.example.com", 8443),
        ),
        (
            (HOST, ("x-forwarded-proto", "https"), ("x-forwarded-port", "4443")),
            ("api.example.com", 4443),
        ),
    ],
)
def test_server_comes_from_the_host_header(source, headers, server, make_adapter, recorder):
    request = Request(headers=headers)
    assert scope_for(source, request, make_adapter, recorder)["server"] == server


@pytest.mark.parametrize("source", ALL)
def test_client_is_the_source_ip(source, make_adapter, recorder):
    request = Request(headers=(HOST,), source_ip="198.51.100.7")
    assert scope_for(source, request, make_adapter, recorder)["client"] == ("198.51.100.7", 0)


@pytest.mark.parametrize("source", ["rest-v1", "http-api-v2", "function-url"])
def test_api_gateway_client_is_the_source_ip_not_x_forwarded_for(source, make_adapter, recorder):
    request = Request(headers=(HOST, ("X-Forwarded-For", "10.9.9.9, 10.8.8.8")))
    assert scope_for(source, request, make_adapter, recorder)["client"] == (CLIENT_IP, 0)


@pytest.mark.parametrize("source", ["alb", "alb-multi-value", "lattice-v1", "lattice-v2"])
def test_load_balancer_client_is_the_last_x_forwarded_for_address(source, make_adapter, recorder):
    request = Request(headers=(HOST, ("X-Forwarded-For", "10.9.9.9, 198.51.100.7")))
    assert scope_for(source, request, make_adapter, recorder)["client"] == ("198.51.100.7", 0)


@pytest.mark.parametrize("source", ENCODED_PATH)
@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/", "/"),
        ("/plain/path", "/plain/path"),
        ("/a%20b/c+d", "/a b/c+d"),
        ("/files/a%2Fb", "/files/a/b"),
        ("/caf%C3%A9/%E2%9C%93", "/caf\u00e9/\u2713"),
        ("/100%25", "/100%"),
        ("/trailing/", "/trailing/"),
    ],
)
def test_path_is_decoded_and_raw_path_is_kept_as_sent(source, target, path, make_adapter, recorder):
    scope = scope_for(source, Request(target=target), make_adapter, recorder)
    assert scope["path"] == path
    assert scope["raw_path"] == target.encode("ascii")
    assert scope["root_path"] == ""


@pytest.mark.parametrize(
    ("target", "path", "raw_path"),
    [
        ("/plain/path", "/plain/path", b"/plain/path"),
        ("/a%20b/c+d", "/a b/c+d", b"/a%20b/c+d"),
        ("/caf%C3%A9/%E2%9C%93", "/caf\u00e9/\u2713", b"/caf%C3%A9/%E2%9C%93"),
        ("/100%25", "/100%", b"/100%25"),
        ("/what%3F", "/what?", b"/what%3F"),
        # HTTP APIs decode %2F before the event is built: it can only come back as "/".
        ("/files/a%2Fb", "/files/a/b", b"/files/a/b"),
    ],
)
def test_http_api_path_arrives_decoded_and_raw_path_is_re_encoded(
    target, path, raw_path, make_adapter, recorder
):
    scope = scope_for("http-api-v2", Request(target=target), make_adapter, recorder)
    assert scope["path"] == path
    assert scope["raw_path"] == raw_path


@pytest.mark.parametrize("source", ALL_QUERY_VALUES)
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", b""),
        ("a=1", b"a=1"),
        ("a=1&a=2&b=3", b"a=1&a=2&b=3"),
        ("plus=a%2Bb", b"plus=a%2Bb"),
        ("space=a+b", b"space=a+b"),
        ("word=caf%C3%A9", b"word=caf%C3%A9"),
        ("slash=a%2Fb", b"slash=a%2Fb"),
        ("amp=a%26b&eq=a%3Db", b"amp=a%26b&eq=a%3Db"),
    ],
)
def test_query_string_keeps_plus_spaces_and_non_ascii_apart(
    source, query, expected, make_adapter, recorder
):
    request = Request(target=f"/q?{query}" if query else "/q")
    assert scope_for(source, request, make_adapter, recorder)["query_string"] == expected


@pytest.mark.parametrize("source", ["http-api-v2", "function-url"])
def test_v2_query_string_is_raw_query_string_byte_for_byte(source, make_adapter, recorder):
    query = "b=2&a=1&b=%20&space=a%20b&plus=+&flag&empty=&weird=%7E~*'()"
    scope = scope_for(source, Request(target=f"/q?{query}"), make_adapter, recorder)
    assert scope["query_string"] == query.encode()


def test_rest_query_is_rebuilt_from_decoded_multi_value_parameters(make_adapter, recorder):
    # API Gateway decodes the values; the rebuilt query must parse back to exactly them.
    event = rest_event(Request(target="/q"))
    event["multiValueQueryStringParameters"] = {
        "q": ["a+b", "c d", "\u00e9t\u00e9", "x/y", "100%"],
        "k&=": ["v&="],
        "empty": [""],
    }
    make_adapter(recorder)(event, None)
    assert recorder.scope["query_string"] == (
        b"q=a%2Bb&q=c+d&q=%C3%A9t%C3%A9&q=x%2Fy&q=100%25&k%26%3D=v%26%3D&empty="
    )


def test_rest_query_falls_back_to_single_value_parameters(make_adapter, recorder):
    event = rest_event(Request(target="/q"))
    event["multiValueQueryStringParameters"] = None
    event["queryStringParameters"] = {"q": "a b+c"}
    make_adapter(recorder)(event, None)
    assert recorder.scope["query_string"] == b"q=a+b%2Bc"


@pytest.mark.parametrize("multi_value", [False, True])
def test_alb_query_values_are_passed_on_still_encoded(multi_value, make_adapter, recorder):
    event = load_event("alb-multi-value" if multi_value else "alb-request")
    params = {"plus": "a%2Bb", "space": "c+d", "word": "caf%C3%A9", "flag": ""}
    if multi_value:
        event["multiValueQueryStringParameters"] = {key: [v] for key, v in params.items()}
    else:
        event["queryStringParameters"] = params
    make_adapter(recorder)(event, None)
    assert recorder.scope["query_string"] == b"plus=a%2Bb&space=c+d&word=caf%C3%A9&flag"


@pytest.mark.parametrize("source", ["alb", "lattice-v1"])
def test_single_value_sources_keep_the_last_value_of_a_repeated_key(source, make_adapter, recorder):
    scope = scope_for(source, Request(target="/q?a=1&a=2&b=3"), make_adapter, recorder)
    assert scope["query_string"] == b"a=2&b=3"


@pytest.mark.parametrize("source", GROUPED_HEADERS)
def test_repeated_headers_are_kept_apart_where_the_source_keeps_them(
    source, make_adapter, recorder
):
    request = Request(headers=(("X-Multi", "1"), HOST, ("x-multi", "2"), ("X-Multi", "3")))
    headers = scope_for(source, request, make_adapter, recorder)["headers"]
    assert [value for name, value in headers if name == b"x-multi"] == [b"1", b"2", b"3"]
    assert (b"host", b"api.example.com") in headers


@pytest.mark.parametrize("source", ["http-api-v2", "function-url", "lattice-v1"])
def test_comma_joined_headers_arrive_as_the_source_joined_them(source, make_adapter, recorder):
    request = Request(headers=(("X-Multi", "1"), HOST, ("x-multi", "2")))
    headers = scope_for(source, request, make_adapter, recorder)["headers"]
    assert [value for name, value in headers if name == b"x-multi"] == [b"1,2"]


@pytest.mark.parametrize("source", ALL)
def test_header_names_are_lower_case_and_values_untouched(source, make_adapter, recorder):
    request = Request(headers=(("X-Custom-Header", "  Mixed Case; q=1  "), ("ACCEPT", "*/*")))
    headers = dict(scope_for(source, request, make_adapter, recorder)["headers"])
    assert headers[b"x-custom-header"] == b"  Mixed Case; q=1  "
    assert headers[b"accept"] == b"*/*"
    assert all(name == name.lower() for name in headers)


@pytest.mark.parametrize("source", ALL)
def test_latin_1_header_values_arrive_as_their_bytes(source, make_adapter, recorder):
    request = Request(headers=(("x-name", "Andr\u00e9"),))
    headers = dict(scope_for(source, request, make_adapter, recorder)["headers"])
    assert headers[b"x-name"] == b"Andr\xe9"


@pytest.mark.parametrize("source", ["http-api-v2", "function-url"])
def test_v2_cookies_are_joined_into_one_cookie_header(source, make_adapter, recorder):
    request = Request(headers=(("Cookie", "a=1; b=two; c=3"),))
    event = SOURCES[source](request)
    assert event["cookies"] == ["a=1", "b=two", "c=3"]
    assert "cookie" not in event["headers"]
    make_adapter(recorder)(event, None)
    cookie_headers = [v for k, v in recorder.scope["headers"] if k == b"cookie"]
    assert cookie_headers == [b"a=1; b=two; c=3"]


def test_v2_event_without_cookies_has_no_cookie_header(make_adapter, recorder):
    make_adapter(recorder)(function_url_event(Request(headers=(HOST,))), None)
    assert [name for name, _ in client_headers(recorder.scope)] == [b"host"]


@pytest.mark.parametrize("source", ALL)
def test_scope_carries_the_event_and_the_context(source, make_adapter, recorder, context):
    event = SOURCES[source](Request())
    make_adapter(recorder)(event, context)
    assert recorder.scope["aws.event"] is event
    assert recorder.scope["aws.context"] is context


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize(
    "body",
    [b"", b"plain text", "caf\u00e9 \u2713".encode(), bytes(range(256)), b"\x89PNG\r\n\x1a\n\x00"],
)
def test_request_body_arrives_as_sent(source, body, make_adapter, recorder):
    scope_for(source, Request("POST", "/upload", body=body), make_adapter, recorder)
    assert recorder.body == body


@pytest.mark.parametrize("source", ALL)
def test_content_length_is_added_when_the_source_dropped_it(source, make_adapter, recorder):
    scope = scope_for(source, Request("POST", "/upload", body=b"12345"), make_adapter, recorder)
    assert [v for k, v in scope["headers"] if k == b"content-length"] == [b"5"]


@pytest.mark.parametrize("source", ALL)
def test_content_length_sent_by_the_client_is_kept(source, make_adapter, recorder):
    request = Request("POST", "/upload", (("Content-Length", "5"),), b"12345")
    headers = scope_for(source, request, make_adapter, recorder)["headers"]
    assert [v for k, v in headers if k == b"content-length"] == [b"5"]


@pytest.mark.parametrize("source", ALL)
def test_no_content_length_without_a_body(source, make_adapter, recorder):
    headers = scope_for(source, Request("GET", "/"), make_adapter, recorder)["headers"]
    assert [k for k, _ in headers if k == b"content-length"] == []


@pytest.mark.parametrize("source", ALL)
def test_base64_flagged_text_body_is_decoded(source, make_adapter, recorder):
    event = SOURCES[source](Request("POST", "/upload"))
    body_key, flag_key = (
        ("body", "is_base64_encoded") if source == "lattice-v1" else ("body", "isBase64Encoded")
    )
    event[body_key] = base64.b64encode(b'{"json": true}').decode()
    event[flag_key] = True
    make_adapter(recorder)(event, None)
    assert recorder.body == b'{"json": true}'


@pytest.mark.parametrize("source", ALL)
def test_missing_or_null_body_is_empty(source, make_adapter, recorder):
    handler = make_adapter(recorder)
    event = SOURCES[source](Request("POST", "/upload"))
    event["body"] = None
    handler(event, None)
    del event["body"]
    handler(event, None)
    assert [body for _, body in recorder.requests] == [b"", b""]


# -- root_path: the API stage, the base path ---------------------------------------------------


def test_rest_stage_is_the_root_path_and_stays_in_path(make_adapter, recorder):
    scope = scope_for_event(
        rest_event(Request(target="/users/7"), stage="prod"), make_adapter, recorder
    )
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == (
        "/prod",
        "/prod/users/7",
        b"/prod/users/7",
    )


def test_rest_stage_root(make_adapter, recorder):
    scope = scope_for_event(rest_event(Request(target="/"), stage="prod"), make_adapter, recorder)
    assert (scope["root_path"], scope["path"]) == ("/prod", "/prod/")


def test_rest_custom_domain_without_stage_in_the_path(make_adapter, recorder):
    scope = scope_for_event(rest_event(Request(target="/users/7")), make_adapter, recorder)
    assert (scope["root_path"], scope["path"]) == ("", "/users/7")


def test_http_api_named_stage_is_the_root_path(make_adapter, recorder):
    scope = scope_for_event(
        http_api_event(Request(target="/users/7"), stage="dev"), make_adapter, recorder
    )
    assert (scope["root_path"], scope["path"]) == ("/dev", "/dev/users/7")


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize(
    ("target", "root_path", "path"),
    [
        ("/api/users", "/api", "/api/users"),
        # The base path itself is the app's root, "/" (LWA 1.1), not a redirect to it.
        ("/api", "/api", "/api/"),
        ("/api/", "/api", "/api/"),
        # Stripped once: the app still routes /api/x.
        ("/api/api/x", "/api", "/api/api/x"),
        # Not a path segment boundary: no base path.
        ("/apiary", "", "/apiary"),
        ("/other/api", "", "/other/api"),
    ],
)
def test_base_path_becomes_the_root_path_once(
    source, target, root_path, path, make_adapter, recorder
):
    scope = scope_for(source, Request(target=target), make_adapter, recorder, base_path="/api")
    assert (scope["root_path"], scope["path"]) == (root_path, path)


@pytest.mark.parametrize("base_path", ["api", "/api/", "api/", "/api"])
def test_base_path_spellings_are_normalised(base_path, make_adapter, recorder):
    scope = scope_for(
        "function-url", Request(target="/api/x"), make_adapter, recorder, base_path=base_path
    )
    assert scope["root_path"] == "/api"


@pytest.mark.parametrize("base_path", ["", "/"])
def test_empty_base_path_is_none(base_path, make_adapter, recorder):
    scope = scope_for(
        "function-url", Request(target="/api/x"), make_adapter, recorder, base_path=base_path
    )
    assert scope["root_path"] == ""


def test_stage_then_base_path(make_adapter, recorder):
    event = rest_event(Request(target="/api/api/x"), stage="prod")
    scope = scope_for_event(event, make_adapter, recorder, base_path="/api")
    assert (scope["root_path"], scope["path"]) == ("/prod/api", "/prod/api/api/x")


def test_base_path_matches_the_decoded_path(make_adapter, recorder):
    scope = scope_for(
        "function-url", Request(target="/my%20api/x"), make_adapter, recorder, base_path="/my api"
    )
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == (
        "/my api",
        "/my api/x",
        b"/my%20api/x",
    )


@pytest.mark.parametrize("variable", ["HOLDFAST_BASE_PATH", "AWS_LWA_REMOVE_BASE_PATH"])
def test_base_path_from_the_environment(variable, monkeypatch, make_adapter, recorder):
    monkeypatch.setenv(variable, "/svc")
    scope = scope_for("function-url", Request(target="/svc/x"), make_adapter, recorder)
    assert scope["root_path"] == "/svc"


def test_holdfast_base_path_wins_over_the_lambda_web_adapter_name(
    monkeypatch, make_adapter, recorder
):
    monkeypatch.setenv("AWS_LWA_REMOVE_BASE_PATH", "/lwa")
    monkeypatch.setenv("HOLDFAST_BASE_PATH", "/hf")
    assert make_adapter(recorder).base_path == "/hf"


def test_base_path_argument_wins_over_the_environment(monkeypatch, make_adapter, recorder):
    monkeypatch.setenv("HOLDFAST_BASE_PATH", "/hf")
    assert make_adapter(recorder, base_path="/arg").base_path == "/arg"


def test_starlette_routes_below_the_base_path(make_adapter):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def show(request):
        return PlainTextResponse(f"{request.url.path} {request.scope['root_path']}")

    app = Starlette(routes=[Route("/api/x", show), Route("/x", show)])
    handler = make_adapter(app, base_path="/api")
    result = handler(function_url_event(Request(target="/api/api/x")), None)
    assert (result["statusCode"], result["body"]) == (200, "/api/api/x /api")
    result = handler(function_url_event(Request(target="/api/x")), None)
    assert (result["statusCode"], result["body"]) == (200, "/api/x /api")


def test_every_source_in_one_adapter(make_adapter, recorder):
    handler = make_adapter(recorder)
    for source in ALL:
        handler(SOURCES[source](Request("POST", "/same?x=1", (HOST,), b"body")), None)
    paths = {(scope["path"], scope["query_string"], body) for scope, body in recorder.requests}
    assert paths == {("/same", b"x=1", b"body")}
    assert len(recorder.requests) == len(ALL)


def test_invalid_event_for_one_source_does_not_break_the_adapter(make_adapter, recorder):
    handler = make_adapter(recorder)
    with pytest.raises(holdfast.InvalidEvent):
        handler({"version": "2.0", "requestContext": {"http": {}}}, None)  # no method
    handler(function_url_event(Request(target="/after")), None)
    assert recorder.scope["path"] == "/after"
