"""Invocation events the host tests send: a Function URL request, from the documented fixture;
and a context with a fixed remaining time for the handlers called directly.

Importable by name from every test directory (see tests/conftest.py). The adapter's own
tests build every source's events in ``tests/adapter/adapter_events.py``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

FUNCTION_URL = json.loads(
    (Path(__file__).parent / "fixtures" / "events" / "function-url.json").read_text()
)


def http_event(path: str, method: str = "GET") -> dict:
    """A Function URL request for ``path``, no query string and no body."""
    event = copy.deepcopy(FUNCTION_URL)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"], event["body"] = "", None
    return event


class TimedContext:
    """A Lambda context as a handler and the drain budget read it: a request id (``None``: the
    event's is used) and a fixed remaining time."""

    def __init__(self, request_id: str | None = "req-1", remaining_ms: int = 30_000) -> None:
        self.aws_request_id = request_id
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
