"""The platform context headers are built on first read (sources.platform.ContextHeaders): every
way an app or a framework reads the scope's headers sees them, and an app that never reads them
never pays for them."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
from adapter_apps import LambdaContext
from adapter_events import Request, function_url_event

import holdfast
from holdfast.sources import platform
from holdfast.sources.platform import ContextHeaders

CONTEXT_NAMES = {b"x-amzn-request-context", b"x-amzn-lambda-context"}


def scope_headers(request: Request | None = None) -> list[tuple[bytes, bytes]]:
    """The scope's headers for a Function URL event, as the app is given them (unread)."""
    seen = {}

    async def app(scope, receive, send):
        seen["headers"] = scope["headers"]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    holdfast.Adapter(app, lifespan="off")(function_url_event(request or Request()), LambdaContext())
    return seen["headers"]


def names(headers) -> set[bytes]:
    return {name for name, _ in headers}


READS = {
    "iter": lambda h: list(iter(h)),
    "list": list,
    "tuple": tuple,
    "dict": lambda h: list(dict(h).items()),
    "sorted": sorted,
    "reversed": lambda h: list(reversed(h)),
    "index": lambda h: [h[i] for i in range(len(h))],
    "slice": lambda h: h[:],
    "copy": lambda h: h.copy(),
    "copy.copy": copy.copy,
    "deepcopy": copy.deepcopy,
    "pickle": lambda h: pickle.loads(pickle.dumps(h)),
    "add": lambda h: h + [(b"x-more", b"1")],  # noqa: RUF005 (list.__add__ is the point)
    "unpack": lambda h: [*h],
}


@pytest.mark.parametrize("read", list(READS))
def test_every_way_of_reading_the_headers_sees_the_context_headers(read):
    headers = scope_headers(Request(headers=[("x-client", "1")]))
    seen = READS[read](headers)
    assert CONTEXT_NAMES | {b"x-client"} <= names(seen)


def test_length_membership_and_comparison_count_them():
    headers = scope_headers()
    length = len(headers)
    assert length == len(list(headers)) and names(headers) >= CONTEXT_NAMES
    [request_context] = [pair for pair in headers if pair[0] == b"x-amzn-request-context"]
    assert request_context in headers
    assert headers == list(headers)
    assert not headers != list(headers)  # noqa: SIM202 (list.__ne__ reads them too)
    assert headers.count(request_context) == 1 and headers.index(request_context) >= 0


def test_a_framework_that_changes_the_list_keeps_them():
    headers = scope_headers()
    headers.append((b"x-added", b"1"))  # as Starlette's MutableHeaders does
    assert CONTEXT_NAMES | {b"x-added"} <= names(list(headers))
    assert len([n for n, _ in headers if n == b"x-amzn-lambda-context"]) == 1


def test_copies_are_plain_lists():
    headers = scope_headers()
    for copied in (copy.copy(headers), pickle.loads(pickle.dumps(headers)), headers.copy()):
        assert type(copied) is list and names(copied) >= CONTEXT_NAMES
    with pytest.raises(TypeError):
        hash(headers)


def test_they_are_built_once_and_only_when_read(monkeypatch):
    calls = []
    real = platform.platform_headers

    def counting(event, context):
        calls.append(event)
        return real(event, context)

    monkeypatch.setattr(platform, "platform_headers", counting)
    headers = scope_headers()
    assert calls == []  # nobody read them: never built
    assert names(headers) >= CONTEXT_NAMES
    len(headers), list(headers), repr(headers)
    assert len(calls) == 1
    [value] = [v for n, v in headers if n == b"x-amzn-lambda-context"]
    assert json.loads(value)["request_id"] == LambdaContext().aws_request_id


def test_built_from_the_event_the_request_came_with():
    event = function_url_event(Request())
    headers = ContextHeaders([(b"a", b"1")], event, None)
    event_copy = json.loads(json.dumps(event["requestContext"]))
    [value] = [v for n, v in headers if n == b"x-amzn-request-context"]
    assert json.loads(value) == event_copy
    assert headers[0] == (b"a", b"1")
