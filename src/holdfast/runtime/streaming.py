"""HTTP responses streamed through the Runtime API in Lambda's HTTP-integration framing.

A Function URL (``InvokeMode=RESPONSE_STREAM``) or an API Gateway streaming integration reads
the body as ``application/vnd.awslambda.http-integration-response``: a JSON prelude
``{"statusCode", "headers", "cookies"}``, eight NUL bytes, then the raw body as the app produces
it. An error once the first byte is out can only be reported in the stream's trailers.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from holdfast._types import RawHeaders
from holdfast.runtime.client import ResponseStream
from holdfast.runtime.report import ErrorReport
from holdfast.sources import HTTPResponse
from holdfast.sources.apigw_v2 import APIGatewayV2

CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
_SEPARATOR = b"\x00" * 8
_FUNCTION_URL = APIGatewayV2()


class HTTPStreamSink:
    """A :class:`holdfast.bridge.ResponseSink` that streams to the Runtime API.

    A response whose status is in ``hold`` (the adapter's ``error_status_codes``) is not
    streamed: it is kept back, so the host can report it as a function error instead.
    """

    __slots__ = ("_held", "_hold", "_stream")

    def __init__(self, stream: ResponseStream, hold: frozenset[int] = frozenset()) -> None:
        self._stream = stream
        self._hold = hold
        self._held: tuple[int, list[bytes]] | None = None

    @property
    def started(self) -> bool:
        """Whether bytes went out: from then on, only :meth:`fail` can report an error."""
        return self._stream.started

    @property
    def closed(self) -> bool:
        return self._stream.closed

    @property
    def held(self) -> tuple[int, str] | None:
        """``(status, body)`` of a response kept back for its error status, else ``None``."""
        if self._held is None:
            return None
        status, chunks = self._held
        return status, b"".join(chunks).decode("utf-8", "replace")

    async def start(self, status: int, headers: RawHeaders) -> None:
        if status in self._hold:
            self._held = (status, [])
            return
        # The prelude goes out at once: clients see the status and headers before the body.
        await self._stream.write(prelude(status, headers) + _SEPARATOR)

    async def write(self, chunk: bytes) -> None:
        if self._held is not None:
            self._held[1].append(chunk)
        else:
            await self._stream.write(chunk)

    async def close(self) -> None:
        if self._held is None:
            await self._stream.close()

    async def fail(self, report: ErrorReport) -> None:
        """End a started response with an error (the client sees a truncated response)."""
        await self._stream.fail(report)

    async def replay(self, result: dict[str, Any]) -> None:
        """Stream a whole buffered Lambda HTTP response, e.g. the 500 of an app that failed
        before it started its response."""
        status, headers, body = _unpack(result)
        await self.start(status, headers)
        await self.write(body)
        await self.close()


def prelude(status: int, headers: RawHeaders) -> bytes:
    """The JSON prelude; ``json`` escapes control characters, so it never contains NUL."""
    # Headers as a Function URL (payload 2.0) carries them: one codec decides that for both.
    encoded = _FUNCTION_URL.encode(HTTPResponse(status, headers, b""))
    document = {
        "statusCode": status,
        "headers": encoded["headers"],
        "cookies": encoded.get("cookies", []),
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _unpack(result: dict[str, Any]) -> tuple[int, RawHeaders, bytes]:
    multi = result.get("multiValueHeaders")
    grouped = multi or {name: [value] for name, value in (result.get("headers") or {}).items()}
    cookies = [("set-cookie", cookie) for cookie in result.get("cookies") or ()]
    pairs = [(name, value) for name, values in grouped.items() for value in values] + cookies
    headers = [(name.lower().encode("latin-1"), str(value).encode()) for name, value in pairs]
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return int(result.get("statusCode", 200)), headers, raw
