"""HTTP responses streamed through the Runtime API in Lambda's HTTP-integration framing.

A Function URL (``InvokeMode=RESPONSE_STREAM``) or an API Gateway streaming integration reads
the body as ``application/vnd.awslambda.http-integration-response``: a JSON prelude
``{"statusCode", "headers", "cookies"}``, eight NUL bytes, then the raw body as the app produces
it. An error once the first byte is out can only be reported in the stream's trailers.
"""

from __future__ import annotations

import json

from holdfast.outcome import Streamed
from holdfast.runtime.client import ResponseStream
from holdfast.runtime.report import ErrorReport

CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
_SEPARATOR = b"\x00" * 8


async def stream(out: ResponseStream, response: Streamed) -> None:
    """Stream ``response`` as the invocation's answer on ``out`` (opened with
    :data:`CONTENT_TYPE`): the prelude at once, then each body chunk as the app produces it; an
    error after the start ends the stream with error trailers."""
    # The prelude goes out at once: clients see the status and headers before the body.
    await out.write(prelude(response) + _SEPARATOR)
    try:
        async for chunk in response.body:
            await out.write(chunk)
    except Exception as exc:  # the app failed after its first byte: a truncated response
        await out.fail(ErrorReport.from_exception(exc))
        return
    await out.close()


def prelude(response: Streamed) -> bytes:
    """The JSON prelude; ``json`` escapes control characters, so it never contains NUL."""
    document = {
        "statusCode": response.status,
        "headers": response.headers,
        "cookies": response.cookies,
    }
    return json.dumps(document, separators=(",", ":")).encode()
