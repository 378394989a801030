"""Security: no client header passes for platform context, no response head HTTP forbids is ever
emitted, and no app is handed a scope a server would never build (docs/adapter.md, "Security").
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import string

import pytest
from adapter_apps import LambdaContext, Recorder
from adapter_events import SOURCES, Request
from echo_apps import fastapi_app, flask_app
from fastapi import FastAPI, Header
from fastapi.responses import PlainTextResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_adapter_fuzz import body_bytes, outcome

import holdfast
from holdfast.outcome import Streamed

APPS = {"flask": flask_app, "fastapi": fastapi_app}
FORGED_CONTEXT = '{"forged": true}'
# Client headers spelled with underscores for dashes: each names platform context.
FORGED = (
    ("X_Amz_Tenant_Id", "forged-tenant"),
    ("X_Amzn_Request_Context", FORGED_CONTEXT),
    ("X_Amzn_Lambda_Context", FORGED_CONTEXT),
    ("X_Amzn_Trace_Id", "Root=forged"),
    ("X_Amzn_Lattice_Identity", "Principal=forged"),
    ("X_Forwarded_For", "198.51.100.66"),
    ("X_Forwarded_Proto", "forged"),
    ("X_Forwarded_Port", "6666"),
)
CONTROLS = {chr(code) for code in (*range(0x09), *range(0x0A, 0x20), 0x7F)}
TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"


class TenantContext(LambdaContext):
    tenant_id = "real-tenant"


def echo(handler, event) -> dict:
    result = handler(event, TenantContext())
    assert result["statusCode"] == 200, result
    return json.loads(body_bytes(result))


@pytest.fixture(scope="module")
def handlers():
    """The apps with the context headers on: the real ones must stand alone beside forgeries."""
    made = {name: holdfast.Adapter(app, context_headers=True) for name, app in APPS.items()}
    yield made
    for handler in made.values():
        handler.close()


@pytest.fixture(scope="module")
def plain_handlers():
    """The apps as adapted by default: no context headers at all."""
    made = {name: holdfast.Adapter(app, context_headers=False) for name, app in APPS.items()}
    yield made
    for handler in made.values():
        handler.close()


# -- 1. forged platform headers -------------------------------------------------------------
@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("app", sorted(APPS))
def test_no_forged_platform_header_reaches_the_app(handlers, app, source):
    answer = echo(handlers[app], SOURCES[source](Request(headers=(*FORGED, ("X-Custom", "1")))))
    text = json.dumps(answer)
    assert "forged" not in text and "198.51.100.66" not in text and "6666" not in text
    headers = {name.lower(): value for name, value in answer["headers"]}
    # The real context headers stand, alone (Flask would show "forged,real" for a merged key).
    assert headers["x-amz-tenant-id"] == "real-tenant"
    assert json.loads(headers["x-amzn-lambda-context"])["request_id"] == "4d8a6c1e-req-0001"
    assert "x-amzn-request-context" in headers or source == "lattice-v1"
    # Under ASGI no underscore spelling of a platform name is left either.
    folded = [name.replace("_", "-") for name in headers if "_" in name]
    assert not [name for name in folded if name.startswith(("x-amz", "x-forwarded-"))]
    assert headers["x-custom"] == "1"


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("app", sorted(APPS))
def test_without_context_headers_no_platform_header_reaches_the_app(plain_handlers, app, source):
    answer = echo(
        plain_handlers[app], SOURCES[source](Request(headers=(*FORGED, ("X-Custom", "1"))))
    )
    text = json.dumps(answer)
    assert "forged" not in text and "198.51.100.66" not in text and "6666" not in text
    headers = {name.lower().replace("_", "-"): value for name, value in answer["headers"]}
    assert not {"x-amz-tenant-id", "x-amzn-lambda-context", "x-amzn-request-context"} & set(headers)
    assert headers["x-custom"] == "1"


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_a_wsgi_app_gets_no_header_whose_name_holds_an_underscore(handlers, source):
    """Under WSGI, X_Api_Key and X-Api-Key are one environ key: gunicorn's default, drop them."""
    sent = (("X_Api_Key", "forged"), ("X-Api-Key", "real"), ("Accept_Language", "xx"))
    answer = echo(handlers["flask"], SOURCES[source](Request(headers=sent)))
    headers = dict(answer["headers"])
    assert headers["X-Api-Key"] == "real"
    assert "Accept-Language" not in headers


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_an_asgi_app_keeps_underscore_names_that_are_not_platform_ones(handlers, source):
    """ASGI keeps names apart (uvicorn passes them): only platform-like ones are dropped."""
    sent = (("X_Api_Key", "client"), ("X-Api-Key", "real"))
    answer = echo(handlers["fastapi"], SOURCES[source](Request(headers=sent)))
    assert ["x_api_key", "client"] in answer["headers"]
    assert ["x-api-key", "real"] in answer["headers"]


def test_fastapi_header_parameters_read_only_the_real_tenant():
    app = FastAPI()

    @app.get("/")
    async def tenant(
        x_amz_tenant_id: str | None = Header(None),
        literal: str | None = Header(None, alias="x_amz_tenant_id", convert_underscores=False),
    ) -> PlainTextResponse:
        return PlainTextResponse(f"{x_amz_tenant_id} {literal}")

    handler = holdfast.Adapter(app, context_headers=True)
    try:
        event = SOURCES["alb"](Request(headers=(("X_Amz_Tenant_Id", "forged-tenant"),)))
        assert handler(event, TenantContext())["body"] == "real-tenant None"
        assert handler(event, LambdaContext())["body"] == "None None"
    finally:
        handler.close()


# -- 2. response splitting -----------------------------------------------------------------
SPLITTING = {
    "CRLF in a value": [(b"x-q", b"a\r\nSet-Cookie: evil=1")],
    "LF in a value": [(b"x-q", b"a\nb")],
    "NUL in a value": [(b"x-q", b"a\x00b")],
    "a name that is not a token": [(b"x q", b"1")],
    "a name with a colon": [(b"set-cookie: evil=1\r\nx", b"1")],
}


def splitting_app(headers):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"reflected"})

    return app


@pytest.mark.parametrize("case", sorted(SPLITTING))
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_a_response_head_http_forbids_is_answered_500(make_adapter, caplog, case, source):
    handler = make_adapter(splitting_app(SPLITTING[case]), lifespan="off")
    with caplog.at_level(logging.ERROR, logger="holdfast"):
        result = handler(SOURCES[source](Request()), LambdaContext())
    assert result["statusCode"] == 500
    assert body_bytes(result) == b"Internal Server Error"
    assert "evil" not in json.dumps(result) and "x-q" not in json.dumps(result)
    logged = "\n".join(r.getMessage() + str(r.exc_info and r.exc_info[1]) for r in caplog.records)
    assert "refusing to send the response" in logged
    assert "4d8a6c1e-req-0001" in logged


def test_a_reflected_query_cannot_inject_a_header_through_fastapi(make_adapter, caplog):
    app = FastAPI()

    @app.get("/")
    async def reflect(q: str) -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"x-q": q})

    handler = make_adapter(app)
    event = SOURCES["function-url"](Request(target="/?q=a%0D%0ASet-Cookie:%20evil=1"))
    with caplog.at_level(logging.ERROR, logger="holdfast"):
        result = handler(event, LambdaContext())
    assert result["statusCode"] == 500 and "evil" not in json.dumps(result)
    assert "x-q" in caplog.text and "control character" in caplog.text


@pytest.mark.parametrize("case", sorted(SPLITTING))
def test_a_streamed_head_http_forbids_is_refused_before_anything_is_sent(make_adapter, case):
    handler = make_adapter(splitting_app(SPLITTING[case]), lifespan="off")

    async def invoke():
        invocation = handler.begin(SOURCES["function-url"](Request()), None, streaming=True)
        result = await asyncio.wait_for(invocation.outcome(), 10)
        return result, [chunk async for chunk in result.body]

    result, body = handler.engine.run(invoke())
    assert isinstance(result, Streamed)
    assert (result.status, result.cookies, body) == (500, [], [b"Internal Server Error"])
    assert "x-q" not in result.headers and "evil" not in json.dumps(result.headers)


# -- 3. requests a server refuses ------------------------------------------------------------
BAD_REQUESTS = {
    "CR LF in a header value": Request(headers=(("x-a", "1\r\nx-b: 2"),)),
    "NUL in a header value": Request(headers=(("x-a", "1\x00"),)),
    "a control character in a header value": Request(headers=(("x-a", "\x1b[0m"),)),
    "DEL in a header value": Request(headers=(("x-a", "\x7f"),)),
    "BS in a header value": Request(headers=(("x-a", "a\x08"),)),
    "US in a header value": Request(headers=(("x-a", "\x1fa"),)),
    "a header name with a space": Request(headers=(("a b", "1"),)),
    "a header name with a colon": Request(headers=(("bad:name", "1"),)),
    "an empty header name": Request(headers=(("", "1"),)),
    "a non-ASCII header name": Request(headers=(("h\u00e9ader", "1"),)),
    "NUL in the path": Request(target="/a%00b"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_a_request_a_server_refuses_is_answered_400_without_the_app(
    make_adapter, caplog, case, source
):
    recorder = Recorder()
    handler = make_adapter(recorder, lifespan="off")
    event = SOURCES[source](BAD_REQUESTS[case])
    if source == "http-api-v2" and case == "NUL in the path":
        event["rawPath"] = "/a\x00b"  # HTTP APIs deliver the path decoded
    with caplog.at_level(logging.WARNING, logger="holdfast"):
        result = handler(event, LambdaContext())
    assert result["statusCode"] == 400
    assert body_bytes(result) == b"Bad Request"
    assert recorder.requests == []
    assert "answering 400" in caplog.text and "4d8a6c1e-req-0001" in caplog.text


def test_tabs_spaces_and_latin_1_in_a_header_value_are_no_control_characters(make_adapter):
    recorder = Recorder()
    handler = make_adapter(recorder, lifespan="off")
    value = "1\t2 ~\x80\xff"
    assert handler(SOURCES["alb"](Request(headers=(("x-a", value),))), None)["statusCode"] == 200
    assert (b"x-a", value.encode("latin-1")) in recorder.scope["headers"]


def test_a_400_under_streaming_is_streamed(make_adapter):
    handler = make_adapter(Recorder(), lifespan="off")
    event = SOURCES["function-url"](Request(headers=(("x-a", "\r\n"),)))

    async def invoke():
        invocation = handler.begin(event, None, streaming=True)
        result = await asyncio.wait_for(invocation.outcome(), 10)
        return result, [chunk async for chunk in result.body]

    result, body = handler.engine.run(invoke())
    assert isinstance(result, Streamed) and (result.status, body) == (400, [b"Bad Request"])


# What uvicorn (h11) builds: token names, values without control characters, no NUL in the path.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")


def assert_a_server_could_build(scope) -> None:
    for name, value in scope["headers"]:
        assert _TOKEN.fullmatch(name), name
        assert _FIELD_VALUE.fullmatch(value), value
    assert "\x00" not in scope["path"]
    assert scope["raw_path"].isascii() and scope["query_string"].isascii()
    assert scope["method"].isupper()


HEADER_NAME = st.one_of(
    st.text(TOKEN_CHARS, min_size=1, max_size=12),
    st.text(st.characters(max_codepoint=0x17F, exclude_categories=("Cs",)), max_size=12),
)
HEADER_VALUE = st.text(st.characters(max_codepoint=0x17F, exclude_categories=("Cs",)), max_size=20)
PATH = st.text(st.characters(max_codepoint=0x17F, exclude_categories=("Cs",)), max_size=20)
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    headers=st.lists(st.tuples(HEADER_NAME, HEADER_VALUE), max_size=5),
    path=PATH,
    source=st.sampled_from(sorted(SOURCES)),
)
def test_any_request_decodes_to_a_scope_a_server_builds_or_is_refused(
    make_adapter, headers, path, source
):
    recorder = Recorder()
    handler = make_adapter(recorder, lifespan="off")
    event = SOURCES[source](Request(target="/" + path.replace("?", "%3F"), headers=tuple(headers)))
    try:
        result = handler(event, None)
    except holdfast.InvalidEvent:
        assert recorder.requests == []
        return
    if recorder.requests:
        assert result["statusCode"] == 200
        assert_a_server_could_build(recorder.scope)
    else:
        assert result["statusCode"] == 400


@FUZZ
@given(
    headers=st.lists(st.tuples(HEADER_NAME, HEADER_VALUE), max_size=5),
    path=PATH,
    source=st.sampled_from(sorted(SOURCES)),
)
def test_flask_never_answers_a_fuzzed_request_with_a_5xx(handlers, headers, path, source):
    event = SOURCES[source](Request(target="/" + path.replace("?", "%3F"), headers=tuple(headers)))
    kind, problem = outcome(handlers["flask"], event)
    assert problem is None, kind
    assert kind in ("2xx", "3xx", "4xx", "InvalidEvent")
