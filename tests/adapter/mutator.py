"""A seeded mutator over the fixture events: every fixture in ``tests/fixtures/events``, each
mutated a few times at random, with values chosen to break decoders — lone surrogates, text
outside latin-1, wrong JSON types, odd hosts and ports, oversized numbers, broken base64,
forged context headers, fields that disagree with their siblings.

Most mutations target the parts of an HTTP event a client controls (headers, query, path,
body, method) so that the event usually stays an HTTP event and reaches the app; the rest
replace or delete any node of the document.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"

TEXT = [
    "",
    " ",
    "\ud800",
    "a\udfffb",
    "caf\u00e9",
    "\u2603\U0001f642",
    "\x00",
    "\r\n",
    "\t",
    "\x7f\x1b[0m",
    "\ufeff",
    "\u2028",
    "a" * 3000,
    "9" * 5000,
    "%",
    "%zz",
    "%ff%fe",
    "%00",
    "%2F%2f",
    "/",
    "//evil.example",
    "/../../etc/passwd",
    "?",
    "#frag",
    "a=b&c",
    "=&=&&",
    "+%2B+",
    "example.com",
    "example.com:-1",
    "example.com:\u00b2",
    "example.com:99999",
    "[::1]:8080",
    "[zz]:80",
    "-1",
    "0",
    "65536",
    "GET",
    "get",
    "GE T",
    "https",
    "HTTP",
    "javascript:alert(1)",
    "203.0.113.9",
    "::1",
    "1.2.3.4, 5.6.7.8",
    ";",
    "a=1; b=2",
    "true",
    "null",
    "chunked",
    "gzip",
]
VALUES: list[Any] = [
    None,
    0,
    -1,
    10**40,
    1.5,
    True,
    False,
    [],
    {},
    ["x"],
    [None],
    [1, "a"],
    {"a": "b"},
    {"a": [1]},
    {"a": None},
]
HEADER_NAMES = [
    "host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-forwarded-for",
    "content-length",
    "transfer-encoding",
    "content-type",
    "cookie",
    "x-amzn-request-context",
    "x-amzn-lambda-context",
    "x-amz-tenant-id",
    "authorization",
    "Accept-Encoding",
    "X-Custom",
    "h\u00e9ader",
    "\u2603",
    "",
    "a b",
    "bad:name",
    "\ud800",
]
BODY_BYTES = [b"", b"x", b"\x00\xff\xfe\x89PNG", "caf\u00e9".encode(), b"{}", b"a" * 70_000]


def load_fixtures() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(FIXTURES.glob("*.json"))}


def mutated_events(count: int, seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """``count`` mutated events, ``(fixture name, event)``, the same for the same ``seed``."""
    fixtures = load_fixtures()
    # HTTP events three times as often as the others (which all end in InvalidEvent).
    names = [name for name in sorted(fixtures) for _ in range(3 if _is_http(fixtures[name]) else 1)]
    rng = random.Random(seed)
    for index in range(count):
        name = names[index % len(names)]
        event = copy.deepcopy(fixtures[name])
        for _ in range(rng.randint(1, 4)):
            mutation = rng.choices(MUTATIONS, weights=WEIGHTS)[0]
            mutation(rng, event)
        yield name, event


def _is_http(event: dict[str, Any]) -> bool:
    return "raw_path" in event or isinstance(event.get("requestContext"), dict)


# -- mutations -----------------------------------------------------------------------------------
def _text(rng: random.Random) -> str:
    if rng.random() < 0.2:  # a random mix of the nasty pieces
        return "".join(rng.choice(TEXT)[:40] for _ in range(rng.randint(1, 4)))
    return rng.choice(TEXT)


def _value(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(VALUES)) if rng.random() < 0.25 else _text(rng)


def _nodes(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield (*path, key)
            yield from _nodes(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield (*path, index)
            yield from _nodes(value, (*path, index))


def _parent(event: dict[str, Any], path: tuple[Any, ...]) -> Any:
    target: Any = event
    for key in path[:-1]:
        target = target[key]
    return target


def replace_any_node(rng: random.Random, event: dict[str, Any]) -> None:
    nodes = list(_nodes(event))
    if nodes:
        path = rng.choice(nodes)
        _parent(event, path)[path[-1]] = _value(rng)


def delete_any_key(rng: random.Random, event: dict[str, Any]) -> None:
    keys = [path for path in _nodes(event) if isinstance(_parent(event, path), dict)]
    if keys:
        path = rng.choice(keys)
        del _parent(event, path)[path[-1]]


def _header_maps(event: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    """The event's header containers: ``(map, values are lists)``."""
    maps = []
    for key in ("headers", "multiValueHeaders"):
        value = event.get(key)
        if isinstance(value, dict):
            lists = key == "multiValueHeaders" or any(isinstance(v, list) for v in value.values())
            maps.append((value, lists))
    if not maps:
        event["headers"] = {}
        maps.append((event["headers"], False))
    return maps


def set_header(rng: random.Random, event: dict[str, Any]) -> None:
    headers, lists = rng.choice(_header_maps(event))
    name = rng.choice(HEADER_NAMES)
    if rng.random() < 0.3:
        name = name.upper()
    value: Any = _value(rng) if rng.random() < 0.2 else _text(rng)
    if lists and rng.random() < 0.8:
        value = [_text(rng) for _ in range(rng.randint(1, 3))]
    headers[name] = value


def set_query(rng: random.Random, event: dict[str, Any]) -> None:
    key = rng.choice(
        [
            "rawQueryString",
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "query_string_parameters",
        ]
    )
    if key == "rawQueryString":
        event[key] = _text(rng) if rng.random() < 0.9 else _value(rng)
    elif rng.random() < 0.8:
        params = event.get(key) if isinstance(event.get(key), dict) else {}
        multi = key.startswith("multi") or rng.random() < 0.3
        params[_text(rng)] = [_text(rng), _text(rng)] if multi else _text(rng)
        event[key] = params
    else:
        event[key] = _value(rng)


def set_path(rng: random.Random, event: dict[str, Any]) -> None:
    key = next((k for k in ("rawPath", "path", "raw_path") if k in event), "path")
    event[key] = "/" + _text(rng) if rng.random() < 0.7 else _value(rng)


def set_method(rng: random.Random, event: dict[str, Any]) -> None:
    context = event.get("requestContext")
    if isinstance(context, dict) and isinstance(context.get("http"), dict):
        target, key = context["http"], "method"
    else:
        target, key = event, next((k for k in ("httpMethod", "method") if k in event), "httpMethod")
    target[key] = rng.choice(["GET", "post", "DELETE", "HEAD", "OPTIONS", "PATCH", *TEXT[:12]])


def set_body(rng: random.Random, event: dict[str, Any]) -> None:
    flag = "is_base64_encoded" if "is_base64_encoded" in event else "isBase64Encoded"
    choice = rng.random()
    if choice < 0.4:
        event["body"] = base64.b64encode(rng.choice(BODY_BYTES)).decode()
        event[flag] = True
    elif choice < 0.8:
        event["body"] = _text(rng)
        event[flag] = rng.random() < 0.3  # sometimes text flagged as base64
    else:
        event["body"] = _value(rng)
        event[flag] = _value(rng)


def set_cookies(rng: random.Random, event: dict[str, Any]) -> None:
    if rng.random() < 0.8:
        event["cookies"] = [_text(rng) for _ in range(rng.randint(0, 3))]
    else:
        event["cookies"] = _value(rng)


def set_source_ip(rng: random.Random, event: dict[str, Any]) -> None:
    context = event.get("requestContext")
    if not isinstance(context, dict):
        return
    http = context.get("http")
    identity = context.get("identity")
    target = http if isinstance(http, dict) else identity if isinstance(identity, dict) else None
    if target is not None:
        target["sourceIp"] = _value(rng)


Mutation = Callable[[random.Random, dict[str, Any]], None]
MUTATIONS: list[Mutation] = [
    set_header,
    set_query,
    set_path,
    set_method,
    set_body,
    set_cookies,
    set_source_ip,
    replace_any_node,
    delete_any_key,
]
WEIGHTS = [30, 12, 10, 4, 10, 5, 3, 14, 6]
