"""The Runtime API (2018-06-01) and Extensions API (2020-01-01) of one execution environment.

This module only speaks HTTP: it routes, validates headers and bodies, and answers misuse the way
RIE does. The state itself lives in a `Sandbox` the environment swaps in for each runtime process.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
import uuid
from typing import Any

from holdfast.http11.server import (
    BodyTooLarge,
    HTTPServer,
    ProtocolError,
    Request,
    Response,
    json_response,
)

from .attempt import Attempt
from .invoke import ResponseStream, RuntimeResponse, error_payload
from .sandbox import APIError, Sandbox, normalize_error_type
from .telemetry import InvalidSubscription, parse_subscription

MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100  # RAPID's limit: 6 MiB + 100 bytes
MAX_STREAM_BYTES = 200 * 1024 * 1024

_RUNTIME = "/2018-06-01/runtime"
_EXTENSION = "/2020-01-01/extension"
_INVOCATION = re.compile(rf"{_RUNTIME}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)")

_ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
_ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"
_RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
_EXTENSION_ID_HEADER = "Lambda-Extension-Identifier"
_INVOCATION_ID_HEADER = "Lambda-Runtime-Invocation-Id"
_TELEMETRY = "/2022-07-01/telemetry"
_LOGS = "/2020-08-15/logs"

_ACCEPTED = {"status": "OK"}
_NEXT_PATH = f"{_RUNTIME}/invocation/next"
_INIT_ERROR_PATH = f"{_RUNTIME}/init/error"


def _too_large(limit: int) -> APIError:
    message = f"Exceeded maximum allowed payload size ({limit} bytes)."
    return APIError(413, "RequestEntityTooLarge", message)


def _response_too_large(limit: int) -> dict[str, str]:
    message = f"Response payload size exceeded maximum allowed payload size ({limit} bytes)."
    return {"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message}


async def _refuse_oversized(attempt: Attempt, request: Request) -> APIError:
    # The caller gets a function error, the runtime a 413; the invocation counts as answered.
    error = _response_too_large(MAX_RESPONSE_BYTES)
    attempt.respond(RuntimeResponse.platform_error(error["errorType"], error["errorMessage"]))
    await request.body.discard(MAX_STREAM_BYTES)
    return _too_large(MAX_RESPONSE_BYTES)


class RuntimeAPIServer:
    """Serves the Runtime and Extensions APIs on 127.0.0.1 for one environment.

    `sandbox` is replaced by the environment each time it starts a runtime process; requests that
    arrive while there is none (a process outliving its reset) are refused with a 500, which
    tells a runtime the sandbox is gone.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sandbox: Sandbox | None = None
        self._server = HTTPServer(self._handle, host, 0)

    @property
    def address(self) -> str:
        """`host:port`, the value of `AWS_LAMBDA_RUNTIME_API`."""
        return f"{self._server.host}:{self._server.port}"

    async def start(self) -> None:
        """Start listening."""
        await self._server.start()

    def hold_answers(self) -> None:
        """The environment is frozen: an answer held now (the runtime's 202, pipelined behind
        by its `/next`) goes out with the connection's next one — the runtime's next event, in
        one piece — or at `release_answers`."""
        self._server.keep_held()

    def release_answers(self) -> None:
        """The environment runs again: what is held goes out now."""
        self._server.release_held()

    def drop_connections(self) -> None:
        """Drop the connections of a process that is gone, ending its pending long polls."""
        self._server.abort_connections()

    async def close(self) -> None:
        """Stop listening."""
        await self._server.close()

    async def _handle(self, request: Request) -> Response:
        sandbox = self.sandbox
        if sandbox is None:
            return _error(APIError(500, "Sandbox.Unavailable", "the environment is being reset"))
        try:
            return await self._route(sandbox, request)
        except APIError as exc:
            return _error(exc)

    async def _route(self, sandbox: Sandbox, request: Request) -> Response:
        path, method = request.path, request.method
        if path == _NEXT_PATH and method == "GET":
            # Answered from inside the dispatch: the runtime starts on the invocation while
            # this task is still to be woken.
            attempt = await sandbox.runtime_next(lambda a: request.answer(_next_response(a)))
            return request.answered or _next_response(attempt)
        if (match := _INVOCATION.fullmatch(path)) and method == "POST":
            if match["kind"] == "response":
                _check_response_mode(request)
            attempt = sandbox.begin_response(
                match["id"], request.headers.get(_INVOCATION_ID_HEADER)
            )
            post = _post_response if match["kind"] == "response" else _post_error
            try:
                return await post(attempt, request)
            finally:
                sandbox.end_response(attempt)
        if path == _INIT_ERROR_PATH and method == "POST":
            body = await _read_limited(request, MAX_RESPONSE_BYTES)
            sandbox.init_error(request.headers.get(_ERROR_TYPE_HEADER), body)
            return json_response(202, _ACCEPTED)
        if path == f"{_RUNTIME}/restore/next" and method == "GET":
            await sandbox.restore_next()
            return Response(200, [("Content-Type", "application/json")], b"")
        if path == f"{_RUNTIME}/restore/error" and method == "POST":
            if not sandbox.snap_start:
                raise APIError(403, "InvalidStateTransition", "SnapStart is not enabled")
            body = await _read_limited(request, MAX_RESPONSE_BYTES)
            sandbox.restore_error(request.headers.get(_ERROR_TYPE_HEADER), body)
            return json_response(202, _ACCEPTED)
        if path.startswith(_EXTENSION):
            return await _extension_route(sandbox, request)
        if path.rstrip("/") == _TELEMETRY and method == "PUT":
            return await _subscribe(sandbox, request, "telemetry")
        if path.rstrip("/") == _LOGS and method == "PUT":
            return await _subscribe(sandbox, request, "logs")
        raise APIError(404, "NotFound", f"no route for {method} {path}")


async def _extension_route(sandbox: Sandbox, request: Request) -> Response:
    path, method = request.path, request.method
    if path == f"{_EXTENSION}/register" and method == "POST":
        body = await _read_limited(request, 64 * 1024)
        extension = sandbox.register(request.headers.get("Lambda-Extension-Name"), body)
        features = request.headers.get("Lambda-Extension-Accept-Feature")
        return json_response(
            200, sandbox.registration_body(features), [(_EXTENSION_ID_HEADER, extension.id)]
        )
    if path == f"{_EXTENSION}/event/next" and method == "GET":
        extension = sandbox.extension(request.headers.get(_EXTENSION_ID_HEADER))
        event = await sandbox.extension_next(extension)
        return json_response(200, event, [("Lambda-Extension-Event-Identifier", str(uuid.uuid4()))])
    if path in (f"{_EXTENSION}/init/error", f"{_EXTENSION}/exit/error") and method == "POST":
        extension = sandbox.extension(request.headers.get(_EXTENSION_ID_HEADER))
        error_type = request.headers.get("Lambda-Extension-Function-Error-Type")
        if not error_type:
            raise APIError(
                403, "Extension.MissingHeader", "Missing Lambda-Extension-Function-Error-Type"
            )
        await _read_limited(request, MAX_RESPONSE_BYTES)
        if path.endswith("/init/error"):
            sandbox.extension_init_error(extension, error_type)
        return json_response(202, _ACCEPTED)
    raise APIError(404, "NotFound", f"no route for {method} {path}")


def _next_response(attempt: Attempt) -> Response:
    headers = [("Content-Type", "application/json"), *attempt.runtime_headers()]
    return Response(200, headers, attempt.request.payload)


def _check_response_mode(request: Request) -> None:
    mode = request.headers.get(_RESPONSE_MODE_HEADER)
    if mode is not None and mode.lower() != "streaming":
        raise APIError(
            400,
            "InvalidFunctionResponseMode",
            f"Invalid {_RESPONSE_MODE_HEADER} header value: {mode!r} (allowed: streaming)",
        )


async def _post_response(attempt: Attempt, request: Request) -> Response:
    content_type = request.headers.get("Content-Type") or "application/json"
    if request.headers.get(_RESPONSE_MODE_HEADER) is not None:
        return await _stream_response(attempt, content_type, request)
    try:
        body = await request.body.read(limit=MAX_RESPONSE_BYTES)
    except BodyTooLarge:
        raise await _refuse_oversized(attempt, request) from None
    attempt.produced_bytes = len(body)
    await _answer_caller_first(attempt, RuntimeResponse(body, content_type))
    return _accepted()


async def _stream_response(attempt: Attempt, content_type: str, request: Request) -> Response:
    stream = ResponseStream(content_type)
    attempt.respond(RuntimeResponse(stream, content_type))
    size = 0
    try:
        async for chunk in request.body.chunks():
            size += len(chunk)
            if size > MAX_STREAM_BYTES:
                stream.finish(_response_too_large(MAX_STREAM_BYTES))
                raise _too_large(MAX_STREAM_BYTES)
            stream.feed(chunk)
            attempt.produced_bytes = size
    except (ProtocolError, ConnectionError, EOFError):
        stream.finish({"errorType": "Runtime.TruncatedResponse", "errorMessage": "truncated"})
        raise
    error = _trailer_error(request)
    stream.finish(error)
    attempt.record.response_sent_at = time.monotonic()
    return json_response(202, _ACCEPTED)


def _trailer_error(request: Request) -> dict[str, Any] | None:
    trailers = request.body.trailers
    error_type = trailers.get(_ERROR_TYPE_HEADER)
    encoded = trailers.get(_ERROR_BODY_TRAILER)
    if error_type is None and encoded is None:
        return None
    error: dict[str, Any] = {"errorType": normalize_error_type(error_type), "errorMessage": ""}
    try:
        decoded = json.loads(base64.b64decode(encoded or "", validate=True))
        if isinstance(decoded, dict):
            error.update(decoded)
    except (ValueError, binascii.Error):
        error["errorMessage"] = "unreadable Lambda-Runtime-Function-Error-Body trailer"
    return error


async def _post_error(attempt: Attempt, request: Request) -> Response:
    error_type = normalize_error_type(request.headers.get(_ERROR_TYPE_HEADER))
    try:
        body = await request.body.read(limit=MAX_RESPONSE_BYTES)
    except BodyTooLarge:
        raise await _refuse_oversized(attempt, request) from None
    if not body:
        body = error_payload(error_type, "")
    await _answer_caller_first(attempt, RuntimeResponse(body, error_type=error_type))
    return _accepted()


async def _answer_caller_first(attempt: Attempt, response: RuntimeResponse) -> None:
    """Hand `response` to the caller before the runtime hears back. A caller that replies
    from inside `respond` (the HTTP front) has its answer out already; any other is woken
    first: the 202, and the `/next` a runtime often sends right behind its response (which
    freezes the environment), wait one round of the event loop rather than hold the caller's
    answer up."""
    if attempt.respond(response) and attempt.request.reply is None:
        await asyncio.sleep(0)


async def _read_limited(request: Request, limit: int) -> bytes:
    try:
        return await request.body.read(limit=limit)
    except BodyTooLarge:
        await request.body.discard(MAX_STREAM_BYTES)
        raise _too_large(limit) from None


async def _subscribe(sandbox: Sandbox, request: Request, api: str) -> Response:
    """PUT /2022-07-01/telemetry (or the Logs API's PUT /2020-08-15/logs): a registered
    extension subscribes to telemetry streams."""
    extension = sandbox.extension(request.headers.get(_EXTENSION_ID_HEADER))
    body = await _read_limited(request, 64 * 1024)
    try:
        subscription = parse_subscription(body, api)
    except InvalidSubscription as exc:
        raise APIError(400, "ValidationError", str(exc)) from None
    sandbox.telemetry.subscribe(extension.name, subscription)
    return json_response(200, "OK")


_ACCEPTED_BODY = json_response(202, _ACCEPTED).body


def _accepted() -> Response:
    return Response(202, [("Content-Type", "application/json")], _ACCEPTED_BODY)


def _error(exc: APIError) -> Response:
    return json_response(exc.status, {"errorMessage": exc.message, "errorType": exc.error_type})
