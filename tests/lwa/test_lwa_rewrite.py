"""Authorization source and base-path removal (lwa-compat.md §5.2, §5.4) as pure functions, and
the middleware that applies them and compression around an app."""

from __future__ import annotations

import asyncio
import gzip
import logging

import pytest

from holdfast.rewrite import RewriteMiddleware, move_authorization, strip_base_path, wrap


def test_authorization_source_moves_the_header():
    headers = [(b"x-custom-auth", b"Bearer t"), (b"authorization", b"AWS4 sig"), (b"a", b"1")]
    assert move_authorization(headers, b"x-custom-auth") == [
        (b"a", b"1"),
        (b"authorization", b"Bearer t"),
    ]


def test_missing_authorization_source_leaves_headers_and_warns(caplog):
    headers = [(b"a", b"1")]
    with caplog.at_level(logging.WARNING, "holdfast"):
        assert move_authorization(headers, b"x-custom-auth") == [(b"a", b"1")]
    assert "x-custom-auth" in caplog.text


@pytest.mark.parametrize(
    ("path", "base", "expected"),
    [
        ("/prod/api/data", "/prod", "/api/data"),
        ("/other/path", "/prod", "/other/path"),
        ("/prod", "/prod", "/"),
        ("/prod/", "/prod", "/"),
        ("/api/api/order", "/api", "/api/order"),
        ("/apiorder", "/api", "/apiorder"),
        ("/productx", "/prod", "/productx"),
        ("/x", "", "/x"),
    ],
)
def test_base_path_is_removed_once_on_a_segment_boundary(path, base, expected):
    assert strip_base_path(path, base) == expected


# -- the middleware the adapter installs ------------------------------------------------------
TEXT = b"Hello World! This body is long enough to be compressed, ok?"


def call(app, headers):
    sent = []
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def text_app(status=200, chunks=(TEXT[:20], TEXT[20:]), content_type=b"text/plain"):
    seen = {}

    async def app(scope, receive, send):
        seen["headers"] = scope["headers"]
        headers = [(b"content-type", content_type)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for index, chunk in enumerate(chunks):
            more = index < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app, seen


def test_middleware_compresses_the_whole_buffered_body():
    app, _ = text_app()
    sent = call(RewriteMiddleware(app, compress=True), [(b"accept-encoding", b"gzip")])
    start, body = sent
    assert (b"content-encoding", b"gzip") in start["headers"]
    assert gzip.decompress(body["body"]) == TEXT
    assert body["more_body"] is False


def test_middleware_leaves_error_statuses_and_event_streams_alone():
    app, _ = text_app(status=502)
    middleware = RewriteMiddleware(app, compress=True, keep_statuses=frozenset({502}))
    sent = call(middleware, [(b"accept-encoding", b"gzip")])
    assert [m.get("body") for m in sent[1:]] == [TEXT[:20], TEXT[20:]]
    app, _ = text_app(content_type=b"text/event-stream")
    sent = call(RewriteMiddleware(app, compress=True), [(b"accept-encoding", b"gzip")])
    assert len(sent) == 3  # streamed on as it came, not held back


def test_middleware_moves_the_authorization_source():
    app, seen = text_app()
    headers = [(b"x-api-auth", b"token"), (b"authorization", b"AWS4-HMAC-SHA256 sig")]
    call(RewriteMiddleware(app, authorization_source="X-Api-Auth"), headers)
    assert seen["headers"] == [(b"authorization", b"token")]


def test_wrap_installs_nothing_when_nothing_is_configured(monkeypatch):
    for name in (
        "HOLDFAST_ENABLE_COMPRESSION",
        "AWS_LWA_ENABLE_COMPRESSION",
        "HOLDFAST_AUTHORIZATION_SOURCE",
        "AWS_LWA_AUTHORIZATION_SOURCE",
    ):
        monkeypatch.delenv(name, raising=False)
    app, _ = text_app()
    assert wrap(app) is app
    monkeypatch.setenv("AWS_LWA_ENABLE_COMPRESSION", "true")
    assert isinstance(wrap(app), RewriteMiddleware)
    monkeypatch.setenv("AWS_LWA_INVOKE_MODE", "response_stream")
    assert wrap(app) is app  # compression is for buffered responses only
