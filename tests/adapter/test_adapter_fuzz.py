"""Fuzz: thousands of mutated fixture events (``mutator.py``, seeded) through a FastAPI and a
Flask echo app. Every event must end in a response or an ``InvalidEvent`` — nothing else, no
hang, no traceback in any body — and the echo apps must never answer 5xx: a 5xx would mean
holdfast built a scope the framework cannot handle. A sample of the same events goes through
``holdfast emulate`` to ``holdfast run`` (buffered and streaming) and to AWS's unmodified
awslambdaric: each must keep serving, in the one environment it started in.

A property test (hypothesis) adds any text in the headers the scope is derived from.

``HOLDFAST_FUZZ_EVENTS`` (per app, default 1500) and ``HOLDFAST_FUZZ_SEED`` widen the search.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import os
import sys
from pathlib import Path

import pytest
from adapter_apps import LambdaContext
from adapter_events import SOURCES, Request
from echo_apps import RUNTIMES, fastapi_app, flask_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutator import mutated_events

import holdfast
from holdfast.emulator import ThreadedEmulator

EVENTS = int(os.environ.get("HOLDFAST_FUZZ_EVENTS", "1500"))
SEED = int(os.environ.get("HOLDFAST_FUZZ_SEED", "20261201"))
HERE = Path(__file__).parent

pytestmark = pytest.mark.timeout(300)


def body_bytes(result: dict) -> bytes:
    body = result.get("body") or ""
    if result.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8", "surrogatepass")


def outcome(handler, event) -> tuple[str, str | None]:
    """``(outcome, problem)``: the kind of answer, and what is wrong with it if anything."""
    try:
        result = handler(event, LambdaContext())
    except holdfast.InvalidEvent:
        return "InvalidEvent", None
    except Exception as exc:  # the property under test: nothing else may escape
        return f"raised {type(exc).__name__}", f"raised {exc!r:.300}"
    if not (isinstance(result, dict) and "statusCode" in result):
        return "other answer", None  # a non-HTTP kind a host answered (a warmer, say)
    status = result["statusCode"]
    if status >= 500:
        return f"{status}", f"answered {status}"
    if b"Traceback (most recent call last)" in body_bytes(result):
        return f"{status}", "a traceback in the body"
    return f"{status // 100}xx", None


@pytest.mark.parametrize(
    ("name", "app"), [("fastapi", fastapi_app), ("flask", flask_app)], ids=["fastapi", "flask"]
)
def test_every_mutated_event_gets_a_response_or_invalid_event(name, app, caplog):
    handler = holdfast.Adapter(app)
    counts: collections.Counter[str] = collections.Counter()
    problems = []
    try:
        with caplog.at_level(logging.ERROR, logger="holdfast"):
            for fixture, event in mutated_events(EVENTS, SEED):
                kind, problem = outcome(handler, event)
                counts[kind] += 1
                if problem is not None:
                    problems.append(f"{fixture}: {problem}: {json.dumps(event)[:600]}")
    finally:
        handler.close()
    print(f"\n{name}: {EVENTS} events, seed {SEED}: {dict(sorted(counts.items()))}")
    assert problems == [], f"{len(problems)} of {EVENTS} events went wrong:\n" + "\n".join(
        problems[:10]
    )
    # Both outcomes are exercised: the events reach the app, and many are refused.
    assert counts["2xx"] > EVENTS // 4
    assert counts["InvalidEvent"] > EVENTS // 10
    # Nothing the app did was logged as an error (holdfast logs app exceptions at ERROR).
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


#: ``(python arguments, emulator options)`` per host; streaming as a Function URL with
#: ``InvokeMode: RESPONSE_STREAM`` runs it.
HOSTS = {
    **{name: (arguments, {}) for name, arguments in RUNTIMES.items()},
    "holdfast-run-streaming": (
        RUNTIMES["holdfast-run"],
        {"invoke_mode": "response_stream", "env": {"HOLDFAST_INVOKE_MODE": "response_stream"}},
    ),
}
STREAMED = "application/vnd.awslambda.http-integration-response"


def answer_of(result) -> tuple[str, str | None]:
    """``(outcome, problem)`` for what a runtime posted through the emulator."""
    if result.function_error:
        error = json.loads(result.payload)
        kind = error["errorType"]
        return kind, None if kind == "InvalidEvent" else f"a function error: {error}"
    if result.content_type == STREAMED:
        prelude, _, body = result.payload.partition(b"\0" * 8)
        status = json.loads(prelude)["statusCode"]
    else:
        answer = json.loads(result.payload)
        if not (isinstance(answer, dict) and "statusCode" in answer):
            return "other answer", None  # a non-HTTP event passed through to the app
        status, body = answer["statusCode"], body_bytes(answer)
    if status >= 500 or b"Traceback (most recent" in body:
        return f"{status}", f"answered {status}"
    return f"{status // 100}xx", None


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_the_runtime_keeps_serving_through_mutated_events(host):
    sample = list(mutated_events(80, SEED + 1))
    arguments, options = HOSTS[host]
    command = [sys.executable, *arguments]
    counts: collections.Counter[str] = collections.Counter()
    problems = []
    with ThreadedEmulator(command, cwd=str(HERE), log=lambda line: None, **options) as emulator:
        for fixture, event in sample:
            kind, problem = answer_of(emulator.invoke(event))
            counts[kind] += 1
            if problem is not None:
                problems.append(f"{fixture}: {problem}")
        emulator.wait_idle()
        records = emulator.freeze_log
        environments = len(emulator.environments)
    print(f"\n{host}: {len(sample)} events: {dict(sorted(counts.items()))}")
    assert problems == []
    assert counts["InvalidEvent"] > 0 and counts["2xx"] > 0
    # One environment served them all: the runtime never crashed or restarted.
    assert environments == 1
    assert [r.cold for r in records].count(True) == 1
    assert all(r.outcome == "frozen" for r in records)


# Any text a client could put in the headers a scope is derived from.
HEADER_TEXT = st.text(st.characters(max_codepoint=0x2FF, exclude_categories=("Cs",)), max_size=30)
CONTROLS = {chr(code) for code in (*range(0x09), *range(0x0A, 0x20), 0x7F)}
DERIVED_FROM = ["host", "x-forwarded-port", "x-forwarded-proto", "x-forwarded-for", "cookie"]


@pytest.fixture(scope="module")
def echo_handlers():
    handlers = {"fastapi": holdfast.Adapter(fastapi_app), "flask": holdfast.Adapter(flask_app)}
    yield handlers
    for handler in handlers.values():
        handler.close()


def header_texts(event: dict) -> list[str]:
    """Every header value and cookie text an event carries."""
    texts = list(event.get("cookies") or ())
    for key in ("headers", "multiValueHeaders"):
        for value in (event.get(key) or {}).values():
            texts.extend(value if isinstance(value, list) else [value])
    return texts


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.fixed_dictionaries({}, optional={name: HEADER_TEXT for name in DERIVED_FROM}),
    source=st.sampled_from(sorted(SOURCES)),
    app=st.sampled_from(["fastapi", "flask"]),
)
def test_no_header_value_makes_a_framework_fail(echo_handlers, values, source, app):
    event = SOURCES[source](Request(headers=tuple(values.items())))
    kind, problem = outcome(echo_handlers[app], event)
    assert problem is None
    # A control character (but HTAB) in a value is a request no server accepts: 400. (The
    # event builders split cookies as API Gateway does, which may strip one: read the event.)
    refused = any(CONTROLS.intersection(value) for value in header_texts(event))
    assert kind == ("4xx" if refused else "2xx")
