"""The platform context headers (sources.platform) are asked for: off by default in-process,
on with ``context_headers=True`` or ``HOLDFAST_CONTEXT_HEADERS=true``; client copies are
dropped either way, and the scope's headers are a plain list."""

from __future__ import annotations

import json

import pytest
from adapter_apps import LambdaContext
from adapter_events import Request, function_url_event

import holdfast

CONTEXT_NAMES = {b"x-amzn-request-context", b"x-amzn-lambda-context"}
FORGED = [
    ("x-amzn-request-context", '{"forged": true}'),
    ("x-amzn-lambda-context", '{"request_id": "forged"}'),
    ("x-amz-tenant-id", "forged-tenant"),
]


def scope_headers(request: Request | None = None, **options) -> list[tuple[bytes, bytes]]:
    """The scope's headers for a Function URL event, as the app is given them."""
    seen = {}

    async def app(scope, receive, send):
        seen["headers"] = scope["headers"]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    adapter = holdfast.Adapter(app, lifespan="off", **options)
    adapter(function_url_event(request or Request()), LambdaContext())
    return seen["headers"]


def names(headers) -> set[bytes]:
    return {name for name, _ in headers}


def test_off_by_default_and_client_copies_are_still_dropped(monkeypatch):
    monkeypatch.delenv("HOLDFAST_CONTEXT_HEADERS", raising=False)
    headers = scope_headers(Request(headers=[("x-client", "1"), *FORGED]))
    assert type(headers) is list
    assert b"x-client" in names(headers)
    assert not names(headers) & (CONTEXT_NAMES | {b"x-amz-tenant-id"})


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_on_when_asked_for_and_built_from_the_real_event(how, monkeypatch):
    monkeypatch.delenv("HOLDFAST_CONTEXT_HEADERS", raising=False)
    options = {}
    if how == "argument":
        options["context_headers"] = True
    else:
        monkeypatch.setenv("HOLDFAST_CONTEXT_HEADERS", "true")
    request = Request(headers=[("x-client", "1"), *FORGED])
    headers = scope_headers(request, **options)
    assert type(headers) is list
    assert CONTEXT_NAMES | {b"x-client"} <= names(headers)
    values = {name: value for name, value in headers if name in CONTEXT_NAMES}
    assert len([name for name, _ in headers if name in CONTEXT_NAMES]) == 2  # no forged copy
    event = function_url_event(request)
    assert json.loads(values[b"x-amzn-request-context"]) == event["requestContext"]
    lambda_context = json.loads(values[b"x-amzn-lambda-context"])
    assert lambda_context["request_id"] == LambdaContext().aws_request_id


def test_the_argument_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("HOLDFAST_CONTEXT_HEADERS", "true")
    assert not names(scope_headers(context_headers=False)) & CONTEXT_NAMES
    monkeypatch.setenv("HOLDFAST_CONTEXT_HEADERS", "false")
    assert names(scope_headers(context_headers=True)) >= CONTEXT_NAMES
