"""Differential test: a catalogue of requests goes both to a Starlette app served by uvicorn over
real HTTP and, as Lambda events, through ``holdfast.Adapter`` to the same app. Status, headers
and body must agree.

Headers are compared without the ones only a server adds or where framing differs (date,
server, content-length, transfer-encoding). The Function URL event carries the request
losslessly: everything is compared byte for byte. REST (v1) and ALB multi-value events group
query parameters by key and REST decodes them: there the raw query string may be spelled
differently, so the app's view of it is compared as parsed parameters.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import http.client
import json
import socket
import threading
import time

import pytest
import uvicorn
from adapter_events import (
    CLIENT_IP,
    Request,
    Response,
    alb_event,
    decode_response,
    function_url_event,
    rest_event,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    StreamingResponse,
)
from starlette.responses import (
    Response as StarletteResponse,
)
from starlette.routing import Route

import holdfast

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# The context headers holdfast adds from the Lambda event (no HTTP server has them).
PLATFORM_HEADERS = {"x-amzn-request-context", "x-amzn-lambda-context", "x-amz-tenant-id"}


async def echo(request):
    body = await request.body()
    scope = request.scope
    return JSONResponse(
        {
            "method": request.method,
            "http_version": scope["http_version"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "root_path": scope["root_path"],
            "route": request.path_params["rest"],
            "query_string": scope["query_string"].decode("latin-1"),
            "query": request.query_params.multi_items(),
            "headers": {
                name: ",".join(request.headers.getlist(name))
                for name in request.headers
                if name not in PLATFORM_HEADERS
            },
            "cookies": request.cookies,
            "url": f"{request.url.scheme}://{request.url.netloc}{request.url.path}",
            "client": request.client.host,
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
    )


async def json_sum(request):
    items = await request.json()
    return JSONResponse({"count": len(items), "total": sum(item["n"] for item in items)})


async def cookies(request):
    response = PlainTextResponse("cookies set")
    response.set_cookie("session", "abc123", httponly=True, samesite="strict")
    response.set_cookie("theme", "dark", max_age=3600)
    response.set_cookie("empty", "")
    response.headers.append("x-multi", "one")
    response.headers.append("x-multi", "two")
    response.headers.append("link", '</a>; rel="preload"')
    response.headers.append("link", '</b>; rel="preload"')
    return response


async def redirect(request):
    status = int(request.query_params.get("status", "302"))
    return RedirectResponse("/echo/target?x=1&y=a%2Fb", status_code=status)


async def no_content(request):
    return StarletteResponse(status_code=204, headers={"x-deleted": "yes"})


async def not_modified(request):
    return StarletteResponse(
        status_code=304, headers={"etag": '"v1"', "cache-control": "max-age=60"}
    )


async def stream(request):
    async def chunks():
        for index in range(int(request.query_params.get("n", "5"))):
            yield f"chunk {index} ".encode() * 50
            await asyncio.sleep(0)

    return StreamingResponse(chunks(), media_type="text/plain; charset=utf-8")


BIG_TEXT = "".join(f"line {n}: the quick brown fox jumps over the lazy dog\n" for n in range(4000))


async def big_text(request):
    return PlainTextResponse(BIG_TEXT)


async def binary(request):
    return StarletteResponse(bytes(range(256)) * 8, media_type="application/octet-stream")


async def png(request):
    return StarletteResponse(b"\x89PNG\r\n\x1a\n" + bytes(range(200)), media_type="image/png")


async def unicode_json(request):
    return JSONResponse({"text": "h\u00e9llo w\u00f6rld \u2713 \U0001f389", "emoji": "\U0001f680"})


async def latin1_text(request):
    body = "caf\u00e9 cr\u00e8me".encode("latin-1")
    return StarletteResponse(body, media_type="text/plain; charset=latin-1")


async def html(request):
    return HTMLResponse("<!doctype html><title>\u00e9</title><p>hello</p>")


async def svg(request):
    return StarletteResponse(
        '<svg xmlns="http://www.w3.org/2000/svg"/>', media_type="image/svg+xml"
    )


async def teapot(request):
    return PlainTextResponse("short and stout", status_code=418, headers={"x-kettle": "on"})


def make_app():
    return Starlette(
        routes=[
            Route("/echo/{rest:path}", echo, methods=METHODS),
            Route("/json-sum", json_sum, methods=["POST"]),
            Route("/cookies", cookies),
            Route("/redirect", redirect),
            Route("/no-content", no_content, methods=["DELETE", "GET"]),
            Route("/not-modified", not_modified),
            Route("/stream", stream),
            Route("/big-text", big_text),
            Route("/binary", binary),
            Route("/png", png),
            Route("/unicode", unicode_json),
            Route("/latin1", latin1_text),
            Route("/html", html),
            Route("/svg", svg),
            Route("/teapot", teapot),
        ],
        middleware=[Middleware(GZipMiddleware, minimum_size=500)],
    )


def request(method, target, headers=(), body=b""):
    """A request as a browser-like client sends it, through a proxy that set X-Forwarded-*."""
    sent = [
        ("Host", "api.example.test"),
        ("User-Agent", "holdfast-differential/1.0"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-For", CLIENT_IP),
        *headers,
    ]
    if body:
        sent.append(("Content-Length", str(len(body))))
    return Request(method, target, tuple(sent), body)


GZIP = ("Accept-Encoding", "gzip")
LARGE_JSON = json.dumps([{"n": n, "name": f"item {n} \u00e9"} for n in range(20_000)]).encode()

CATALOGUE = {
    **{
        f"method-{method.lower()}": request(
            method, "/echo/methods", body=b"payload" * (method != "GET")
        )
        for method in METHODS
    },
    "head": request("HEAD", "/echo/head?x=1"),
    "repeated-query-keys": request("GET", "/echo/q?a=1&b=2&a=3&a=&flag&b=4"),
    "plus-and-encoded-plus-in-query": request("GET", "/echo/q?plus=a+b&encoded=a%2Bb&both=+%2B+"),
    "encoded-slash-in-query": request("GET", "/echo/q?path=a%2Fb%2Fc&raw=a/b"),
    "plus-in-path": request("GET", "/echo/a+b/c+d"),
    "encoded-slash-in-path": request("GET", "/echo/files/a%2Fb.txt"),
    "spaces": request("GET", "/echo/with%20space?q=two%20words&r=two+words"),
    "unicode-path-and-query": request("GET", "/echo/caf%C3%A9/%E2%9C%93?q=%C3%A9t%C3%A9&k%C3%A9=v"),
    "reserved-characters": request("GET", "/echo/a;b,c=d@e!f$g'h(i)j*k?x=%26%3D%23%3F&y=~"),
    "percent-sign": request("GET", "/echo/100%25?discount=50%25"),
    "binary-body": request(
        "POST",
        "/echo/upload",
        (("Content-Type", "application/octet-stream"),),
        bytes(range(256)) * 16,
    ),
    "unicode-text-body": request(
        "PUT",
        "/echo/text",
        (("Content-Type", "text/plain; charset=utf-8"),),
        "h\u00e9llo \u2713".encode(),
    ),
    "form-body": request(
        "POST",
        "/echo/form",
        (("Content-Type", "application/x-www-form-urlencoded"),),
        b"a=1&b=two+words&c=%C3%A9",
    ),
    "large-json-body": request(
        "POST", "/json-sum", (("Content-Type", "application/json"),), LARGE_JSON
    ),
    "multiple-cookies": request("GET", "/echo/cookies", (("Cookie", "a=1; b=two; c=3=4"),)),
    "repeated-headers": request(
        "GET", "/echo/headers", (("X-Multi", "one"), ("Accept", "text/html"), ("X-Multi", "two"))
    ),
    "latin-1-header": request("GET", "/echo/latin1", (("X-Name", "Andr\u00e9"),)),
    "set-cookies-and-repeated-response-headers": request("GET", "/cookies"),
    "redirect-302": request("GET", "/redirect"),
    "redirect-307": request("POST", "/redirect?status=307", body=b"keep"),
    "redirect-301": request("GET", "/redirect?status=301"),
    "no-content-204": request("DELETE", "/no-content"),
    "not-modified-304": request("GET", "/not-modified", (("If-None-Match", '"v1"'),)),
    "head-of-big-text": request("HEAD", "/big-text"),
    "streaming": request("GET", "/stream"),
    "streaming-gzip": request("GET", "/stream?n=40", (GZIP,)),
    "big-text": request("GET", "/big-text"),
    "big-text-gzip": request("GET", "/big-text", (GZIP,)),
    "echo-gzip": request("GET", "/echo/gzip?" + "&".join(f"k{n}=v{n}" for n in range(60)), (GZIP,)),
    "small-response-not-gzipped": request("GET", "/teapot", (GZIP,)),
    "binary-response": request("GET", "/binary"),
    "png-response": request("GET", "/png", (GZIP,)),
    "unicode-json-response": request("GET", "/unicode"),
    "latin-1-text-response": request("GET", "/latin1"),
    "html-response": request("GET", "/html"),
    "svg-response": request("GET", "/svg"),
    "not-found": request("GET", "/nowhere?x=1"),
    "method-not-allowed": request("PATCH", "/cookies"),
}

BUILDERS = {
    "function-url": function_url_event,
    "rest-v1": rest_event,
    "alb-multi-value": functools.partial(alb_event, multi_value=True),
}
LOSSLESS = {"function-url"}
# Differ only in framing, or are added by the server itself.
IGNORED_HEADERS = {"date", "server", "content-length", "transfer-encoding"}


@pytest.fixture(scope="module")
def server_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        make_app(), lifespan="on", log_level="warning", access_log=False, forwarded_allow_ips="*"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture(scope="module")
def handler():
    adapter = holdfast.Adapter(make_app())
    yield adapter
    adapter.engine.run(adapter.shutdown(timeout=5))
    adapter.engine.close()


def over_http(port, req: Request) -> Response:
    """Send ``req`` exactly as given (no added headers, no redirects, no decompression)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest(req.method, req.target, skip_host=True, skip_accept_encoding=True)
        for name, value in req.headers:
            connection.putheader(name, value)
        connection.endheaders(req.body or None)
        response = connection.getresponse()
        body = response.read()
        headers = [(name.lower(), value) for name, value in response.getheaders()]
        return Response(response.status, headers, body)
    finally:
        connection.close()


def through_adapter(handler, builder, req: Request) -> Response:
    return decode_response(handler(BUILDERS[builder](req), None))


def comparable(response: Response, builder: str):
    grouped: dict[str, list[str]] = {}
    for name, value in response.headers:
        if name not in IGNORED_HEADERS:
            grouped.setdefault(name, []).append(value)
    if builder == "function-url":
        # Payload 2.0 responses join repeated headers with commas (cookies travel apart).
        grouped = {k: v if k == "set-cookie" else [",".join(v)] for k, v in grouped.items()}
    body = response.body
    if body and builder not in LOSSLESS and grouped.get("content-type") == ["application/json"]:
        if grouped.get("content-encoding") == ["gzip"]:
            body = gzip.decompress(body)
        document = json.loads(body)
        if "query_string" in document:
            # Grouped by key (and decoded by REST): same parameters, maybe another spelling.
            document["query_string"] = None
            document["query"] = sorted(document["query"], key=lambda item: item[0])
        body = document
    return response.status, grouped, body


@pytest.mark.parametrize("builder", sorted(BUILDERS))
@pytest.mark.parametrize("name", list(CATALOGUE))
def test_adapter_answers_like_uvicorn(name, builder, server_port, handler):
    req = CATALOGUE[name]
    expected = over_http(server_port, req)
    actual = through_adapter(handler, builder, req)
    assert comparable(actual, builder) == comparable(expected, builder)


def test_catalogue_exercises_what_it_claims(server_port):
    """Guards the comparison against vacuity: uvicorn's answers really are gzipped, streamed,
    redirected, bodiless and carry repeated cookies where the catalogue says so."""
    answers = {name: over_http(server_port, CATALOGUE[name]) for name in CATALOGUE}
    assert answers["big-text-gzip"].header_values("content-encoding") == ["gzip"]
    assert gzip.decompress(answers["big-text-gzip"].body).decode() == BIG_TEXT
    assert answers["streaming-gzip"].header_values("content-encoding") == ["gzip"]
    assert answers["streaming"].header_values("transfer-encoding") == ["chunked"]
    assert answers["small-response-not-gzipped"].header_values("content-encoding") == []
    assert answers["redirect-302"].status == 302
    assert answers["redirect-302"].header_values("location") == ["/echo/target?x=1&y=a%2Fb"]
    assert [answers[n].body for n in ("head", "no-content-204", "not-modified-304")] == [b""] * 3
    assert (
        len(answers["set-cookies-and-repeated-response-headers"].header_values("set-cookie")) == 3
    )
    assert json.loads(answers["large-json-body"].body) == {"count": 20_000, "total": 199_990_000}
    echo = json.loads(answers["plus-and-encoded-plus-in-query"].body)
    assert echo["query"] == [["plus", "a b"], ["encoded", "a+b"], ["both", " + "]]
    assert echo["query_string"] == "plus=a+b&encoded=a%2Bb&both=+%2B+"
    echo = json.loads(answers["encoded-slash-in-path"].body)
    assert (echo["path"], echo["raw_path"]) == ("/echo/files/a/b.txt", "/echo/files/a%2Fb.txt")
    assert json.loads(answers["repeated-headers"].body)["headers"]["x-multi"] == "one,two"


RAW_QUERY_SPELLINGS = {
    # name: (uvicorn and Function URL, REST v1 rebuilt from decoded values, ALB grouped by key)
    "spaces": ("q=two%20words&r=two+words", "q=two+words&r=two+words", "q=two%20words&r=two+words"),
    "repeated-query-keys": (
        "a=1&b=2&a=3&a=&flag&b=4",
        "a=1&a=3&a=&b=2&b=4&flag=",
        "a=1&a=3&a&b=2&b=4&flag",
    ),
}


@pytest.mark.parametrize("name", sorted(RAW_QUERY_SPELLINGS))
def test_raw_query_string_spelling_per_source(name, handler, server_port):
    req = CATALOGUE[name]
    served = json.loads(over_http(server_port, req).body)
    spellings = [
        json.loads(through_adapter(handler, builder, req).body)["query_string"]
        for builder in ("function-url", "rest-v1", "alb-multi-value")
    ]
    assert served["query_string"] == spellings[0]
    assert tuple(spellings) == RAW_QUERY_SPELLINGS[name]
