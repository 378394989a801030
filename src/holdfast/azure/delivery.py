"""The response the worker's web server sends in HTTP streaming mode.

A Starlette `Response` (the extension's FastAPI server returns any Response a function gives
it as is) that writes the app's head and body chunks as they come and says when its last
byte went out: the body ends with the app's own framing (its `Content-Length`, or the
chunked terminator), so the client has the whole response at that moment, whatever runs next.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.responses import Response

logger = logging.getLogger("holdfast")


class DeliveredResponse(Response):
    """The app's response, relayed; `delivered()` is called once it was sent (or failed)."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes],
        delivered: Callable[[], None],
    ) -> None:
        self.status_code = status
        self.raw_headers = headers
        self.background = None
        self._chunks = body
        self._delivered = delivered
        #: Without the worker's coordinator: the drain, run behind the last byte.
        self.after_sent: Callable[[], Awaitable[Any]] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self._chunks:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self._delivered()
            if self.after_sent is not None:
                await self.after_sent()
