"""Invocation events the host tests send: a Function URL request, from the documented fixture.

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
