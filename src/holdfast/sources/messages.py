"""The two records a codec translates between: the decoded request and the collected response."""

from __future__ import annotations

from dataclasses import dataclass

from holdfast._types import RawHeaders


@dataclass(slots=True)
class HTTPRequest:
    """An HTTP request decoded from a Lambda event, in the terms of an ASGI ``http`` scope."""

    method: str
    scheme: str
    server: tuple[str, int] | None
    client: tuple[str, int] | None
    root_path: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: RawHeaders
    body: bytes


@dataclass(slots=True)
class HTTPResponse:
    """A complete buffered response, ready to be encoded for the event's source."""

    status: int
    headers: RawHeaders
    body: bytes
