"""The dashboard at ``/_holdfast``: static files from this package and a live feed.

    GET /_holdfast              the page
    GET /_holdfast/static/NAME  its script and style sheet (no build step, nothing from a CDN)
    GET /_holdfast/api/state    everything kept, as JSON
    GET /_holdfast/events       server-sent events: `snapshot`, then `invocation`, `task`,
                                `queues` and `reload` as they happen

Served by `holdfast dev` only, on 127.0.0.1; requests naming another host are refused (a web
page elsewhere cannot read it through DNS rebinding).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from holdfast.http11.server import Request, Response, json_response

from .timeline import Timeline

PREFIX = "/_holdfast"
KEEPALIVE_SECONDS = 15.0
# A client that falls this far behind is dropped (its browser reconnects and gets a snapshot).
MAX_BACKLOG = 5000
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _static_files() -> dict[str, bytes]:
    folder = resources.files("holdfast.dev").joinpath("static")
    return {item.name: item.read_bytes() for item in folder.iterdir() if item.is_file()}


class Dashboard:
    """Answers the requests under `PREFIX`."""

    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline
        self._files = _static_files()

    async def handle(self, request: Request) -> Response:
        """One request under `/_holdfast`."""
        host = (request.headers.get("host") or "").rsplit(":", 1)[0]
        if host not in _LOCAL_HOSTS:
            return _text(403, "the dashboard answers requests for 127.0.0.1 or localhost only")
        if request.method not in ("GET", "HEAD"):
            return _text(405, "method not allowed", [("Allow", "GET, HEAD")])
        path = request.path[len(PREFIX) :]
        if path in ("", "/"):
            return self._file("index.html")
        if path.startswith("/static/"):
            return self._file(path.removeprefix("/static/"))
        if path == "/api/state":
            return json_response(200, self._timeline.snapshot(), [("Cache-Control", "no-store")])
        if path == "/events":
            return Response(
                200,
                [
                    ("Content-Type", "text/event-stream"),
                    ("Cache-Control", "no-store"),
                    ("X-Accel-Buffering", "no"),
                ],
                self._events(),
            )
        return _text(404, "not found")

    def _file(self, name: str) -> Response:
        body = self._files.get(name)
        if body is None:
            return _text(404, "not found")
        kind = _TYPES.get(name[name.rfind(".") :], "application/octet-stream")
        return Response(200, [("Content-Type", kind), ("Cache-Control", "no-cache")], body)

    async def _events(self) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        unsubscribe = self._timeline.subscribe(lambda kind, data: queue.put_nowait((kind, data)))
        try:
            yield b"retry: 1000\n" + _event("snapshot", self._timeline.snapshot())
            while queue.qsize() < MAX_BACKLOG:
                try:
                    kind, data = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield _event(kind, data)
        finally:
            unsubscribe()


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _text(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(
        status, [("Content-Type", "text/plain; charset=utf-8"), *(headers or [])], message.encode()
    )
