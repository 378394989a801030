"""The `--port` listener: RIE's invoke endpoint, and an HTTP front for every other request.

`POST /2015-03-31/functions/{name}/invocations` behaves like the Lambda Invoke API (and RIE):
raw event in, raw payload out, `X-Amz-Function-Error: Unhandled` on a function error,
`X-Amz-Invocation-Type: Event` answered 202 and retried on failure. Any other request is turned
into an event of the configured integration and the function's answer back into HTTP; in
`response_stream` mode a streamed answer is relayed chunk by chunk as it arrives.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any, Protocol

from holdfast.http11.grammar import forbidden_field
from holdfast.http11.server import (
    BODY_TIMEOUT,
    HEAD_TIMEOUT,
    IDLE_TIMEOUT,
    BodyTooLarge,
    HTTPServer,
    Request,
    Response,
    StreamAborted,
    json_response,
)

from . import eventstream
from .config import EmulatorConfig
from .integrations import (
    HTTP_INTEGRATION_CONTENT_TYPE,
    HttpRequest,
    HttpResponse,
    MalformedResponse,
    build_event,
    decode_response,
    error_response,
    split_prelude,
)
from .invoke import (
    FUNCTION_ERROR_UNHANDLED,
    InvokeRequest,
    ResponseStream,
    RuntimeResponse,
    StreamError,
    TooManyRequests,
    new_request_id,
)

_log = logging.getLogger("holdfast.emulator")

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 1024 * 1024
MAX_CLIENT_CONTEXT = 3583
MAX_TENANT_ID = 256
TENANT_HEADER = "X-Amz-Tenant-Id"
# A refused body up to this size is read and dropped to keep the connection; beyond, it closes.
_DISCARD_LIMIT = 64 * 1024 * 1024

_INVOKE_PATH = re.compile(r"/2015-03-31/functions/(?P<name>[^/]+)/invocations")
_STREAMING_INVOKE_PATH = re.compile(
    r"/2021-11-15/functions/(?P<name>[^/]+)/response-streaming-invocations"
)
_INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
_STREAMING_INVOCATION_TYPES = ("RequestResponse", "DryRun")
# Hop-by-hop fields (RFC 9110 §7.6.1) end at the front, as they end at AWS's edge.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "expect"}
)
# The front frames responses itself: a function's own framing headers would contradict it.
_RESPONSE_FRAMING = _HOP_BY_HOP | {"content-length"}


class Dispatcher(Protocol):
    """What the front needs from the emulator: run an invocation now, or in the background."""

    async def call(self, request: InvokeRequest) -> RuntimeResponse:
        """Invoke and return the response as soon as the runtime posts it."""
        ...

    def call_async(self, request: InvokeRequest) -> None:
        """Invoke in the background, retrying failures as Lambda does for async invokes."""
        ...


class Front:
    """The public listener of the emulator."""

    def __init__(self, config: EmulatorConfig, dispatcher: Dispatcher) -> None:
        self._config = config
        self._dispatcher = dispatcher
        self._server = HTTPServer(
            self.handle,
            config.host,
            config.port,
            idle_timeout=IDLE_TIMEOUT,
            head_timeout=HEAD_TIMEOUT,
            body_timeout=BODY_TIMEOUT,
        )

    @property
    def port(self) -> int:
        """The port bound (useful with port 0)."""
        return self._server.port

    async def start(self) -> None:
        """Start listening."""
        await self._server.start()

    async def close(self) -> None:
        """Stop listening and drop open connections."""
        await self._server.close()

    async def handle(self, request: Request) -> Response:
        """Answer one request (what the listener does; `holdfast dev` mounts it in its own)."""
        invoke_api = request.method == "POST" and (
            _INVOKE_PATH.fullmatch(request.path) or _STREAMING_INVOKE_PATH.fullmatch(request.path)
        )
        try:
            if not invoke_api:
                return await self._http(request)
            if _INVOKE_PATH.fullmatch(request.path):
                return await self._invoke(request)
            return await self._invoke_streaming(request)
        except TooManyRequests:
            return _throttled(bool(invoke_api))

    # -- the Invoke API -----------------------------------------------------------------------

    async def _invoke(self, request: Request) -> Response:
        invoke = await _invoke_request(request, _INVOCATION_TYPES)
        if isinstance(invoke, Response):
            return invoke
        invocation_type = request.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        headers = [("X-Amzn-RequestId", invoke.request_id)]
        if invocation_type == "DryRun":
            return Response(204, headers)
        if invocation_type == "Event":
            self._dispatcher.call_async(invoke)
            return Response(202, headers)
        response = await (await self._dispatcher.call(invoke)).buffered()
        headers.append(("X-Amz-Executed-Version", "$LATEST"))
        if response.is_error:
            headers.append(("X-Amz-Function-Error", FUNCTION_ERROR_UNHANDLED))
        assert isinstance(response.body, bytes)
        return Response(200, [("Content-Type", response.content_type), *headers], response.body)

    async def _invoke_streaming(self, request: Request) -> Response:
        """InvokeWithResponseStream: the response as `PayloadChunk` events as it comes, then
        `InvokeComplete` (with `ErrorCode` / `ErrorDetails` if the function failed)."""
        invoke = await _invoke_request(request, _STREAMING_INVOCATION_TYPES)
        if isinstance(invoke, Response):
            return invoke
        headers = [("X-Amzn-RequestId", invoke.request_id)]
        if request.headers.get("X-Amz-Invocation-Type") == "DryRun":
            return Response(204, headers)
        response = await self._dispatcher.call(invoke)
        headers += [
            ("Content-Type", eventstream.CONTENT_TYPE),
            ("X-Amz-Executed-Version", "$LATEST"),
        ]
        return Response(200, headers, _event_stream(response))

    # -- the HTTP front -----------------------------------------------------------------------

    async def _http(self, request: Request) -> Response:
        config = self._config
        try:
            body = await request.body.read(limit=MAX_SYNC_PAYLOAD)
        except BodyTooLarge:
            await request.body.discard(_DISCARD_LIMIT)
            return json_response(413, {"message": "Request Entity Too Large"})
        http_request = HttpRequest(
            method=request.method,
            raw_path=request.path,
            raw_query=request.query,
            headers=_clean(request.headers.items(), _HOP_BY_HOP),
            body=body,
            source_ip=request.client[0],
            protocol=request.version,
            port=self.port,
        )
        request_id = new_request_id()
        event = build_event(
            config.event_format,
            http_request,
            request_id=request_id,
            region=config.region,
            function_name=config.function_name,
            alb_multi_value=config.alb_multi_value,
        )
        payload = json.dumps(event).encode()
        if len(payload) > MAX_SYNC_PAYLOAD:
            return json_response(413, {"message": "Request Entity Too Large"})
        try:  # as an API Gateway integration that maps the header to the tenant id would
            tenant_id = _tenant_id(request.headers.get(TENANT_HEADER))
        except ValueError as exc:
            return json_response(400, {"message": str(exc)})
        extra = [("x-amzn-RequestId", request_id)]
        replied: list[Response] = []
        reply = functools.partial(self._reply, request, extra, replied)
        invoke = InvokeRequest(payload, request_id=request_id, tenant_id=tenant_id, reply=reply)
        response = await self._dispatcher.call(invoke)
        if replied:  # written already, or (a HEAD, a large body) to be written now
            return replied[0]
        if config.invoke_mode == "response_stream" and isinstance(response.body, ResponseStream):
            return _relay(await self._open_stream(response.body), extra)
        return _relay(self._sendable(self._decoded(await response.buffered())), extra)

    def _reply(
        self,
        request: Request,
        extra: list[tuple[str, str]],
        replied: list[Response],
        response: RuntimeResponse,
    ) -> None:
        """Answer the client the moment the runtime posts a whole response (a stream is
        relayed by the handler's task as it comes)."""
        if not isinstance(response.body, ResponseStream):
            replied.append(_relay(self._sendable(self._decoded(response)), extra))
            request.answer(replied[0])

    def _decoded(self, response: RuntimeResponse) -> HttpResponse:
        """The HTTP response the integration makes of the function's whole response."""
        if response.is_error:
            return error_response(self._config.event_format)
        assert isinstance(response.body, bytes)
        try:
            if response.content_type.startswith(HTTP_INTEGRATION_CONTENT_TYPE):
                parsed = split_prelude(response.body)
                if parsed is None:
                    raise MalformedResponse("the streaming prelude never ended")
                head, rest = parsed
                head.body = rest
                return head
            return decode_response(
                self._config.event_format,
                response.body,
                alb_multi_value=self._config.alb_multi_value,
            )
        except MalformedResponse:
            return error_response(self._config.event_format)

    async def _open_stream(self, stream: ResponseStream) -> HttpResponse | Response:
        """Read up to the end of the prelude, then relay the rest of the stream as it comes."""
        chunks = aiter(stream)
        rest = b""
        head = HttpResponse(200, [("content-type", stream.content_type)])
        try:
            if stream.content_type.startswith(HTTP_INTEGRATION_CONTENT_TYPE):
                buffer = b""
                while (parsed := split_prelude(buffer)) is None:
                    buffer += await anext(chunks)
                head, rest = parsed
        except (StreamError, StopAsyncIteration, MalformedResponse):
            return error_response(self._config.event_format)
        if self._sendable(head) is not head:
            return error_response(self._config.event_format)
        return Response(head.status, _clean(head.headers), _relay_stream(rest, chunks))

    def _sendable(self, response: HttpResponse) -> HttpResponse:
        """`response`, or the integration's 502 if a header of it would split the HTTP answer
        (CR/LF in a value: response splitting), as API Gateway refuses such a response."""
        bad = forbidden_field(response.headers)
        if bad is None:
            return response
        _log.error(
            "the function's response header %r: %r is not valid HTTP (a control character "
            "such as CR, LF or NUL, or a name that is not a token): answered 502 instead",
            bad[0][:60],
            bad[1][:60],
        )
        return error_response(self._config.event_format)


async def _invoke_request(request: Request, allowed: tuple[str, ...]) -> InvokeRequest | Response:
    """The invocation an Invoke API request asks for, or the error response refusing it."""
    invocation_type = request.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
    if invocation_type not in allowed:
        message = f"Unsupported invocation type {invocation_type!r}"
        return _api_error(400, "InvalidParameterValueException", message)
    limit = MAX_ASYNC_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
    try:
        payload = await request.body.read(limit=limit) or b"{}"
    except BodyTooLarge:
        await request.body.discard(_DISCARD_LIMIT)
        message = f"Request must be smaller than {limit} bytes for the InvokeFunction operation"
        return _api_error(413, "RequestEntityTooLargeException", message)
    try:
        json.loads(payload)
    except ValueError as exc:
        message = f"Could not parse request body into json: {exc}"
        return _api_error(400, "InvalidRequestContentException", message)
    try:
        client_context = _client_context(request.headers.get("X-Amz-Client-Context"))
    except ValueError as exc:
        return _api_error(400, "InvalidRequestContentException", str(exc))
    try:
        tenant_id = _tenant_id(request.headers.get(TENANT_HEADER))
    except ValueError as exc:
        return _api_error(400, "InvalidParameterValueException", str(exc))
    return InvokeRequest(payload, client_context=client_context, tenant_id=tenant_id)


async def _event_stream(response: RuntimeResponse) -> AsyncIterator[bytes]:
    """The function's answer framed as InvokeWithResponseStream events."""
    body = response.body
    if isinstance(body, ResponseStream):
        try:
            async for chunk in body:
                yield eventstream.payload_chunk(chunk)
        except StreamError as exc:
            yield _complete_with_error(exc.error)
            return
    elif response.is_error:
        try:
            error = json.loads(body)
        except ValueError:
            error = {"errorMessage": body.decode("utf-8", "replace")}
        if not isinstance(error, dict):
            error = {"errorMessage": str(error)}
        yield _complete_with_error({"errorType": response.error_type, **error})
        return
    elif body:
        yield eventstream.payload_chunk(body)
    yield eventstream.invoke_complete()


def _complete_with_error(error: dict[str, Any]) -> bytes:
    error_type = str(error.get("errorType") or "Runtime.Unknown")
    return eventstream.invoke_complete(error_type, json.dumps(error))


def _relay(response: HttpResponse | Response, extra: list[tuple[str, str]]) -> Response:
    if isinstance(response, Response):
        response.headers.extend(extra)
        return response
    return Response(response.status, [*_clean(response.headers), *extra], response.body)


async def _relay_stream(first: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    try:
        async for chunk in chunks:
            yield chunk
    except StreamError:
        # The error came after the status line went out: all that is left is to cut the body
        # short, which is what a Function URL does too.
        raise StreamAborted from None


def _clean(
    headers: list[tuple[str, str]], drop: frozenset[str] = _RESPONSE_FRAMING
) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name.lower() not in drop]


def _tenant_id(header: str | None) -> str | None:
    """The tenant an invoke names (`X-Amz-Tenant-Id`): 1 to 256 visible ASCII characters."""
    if header is None:
        return None
    if not 1 <= len(header) <= MAX_TENANT_ID or not all(33 <= ord(c) <= 126 for c in header):
        raise ValueError(
            f"TenantId must be 1 to {MAX_TENANT_ID} visible ASCII characters (no spaces)"
        )
    return header


def _client_context(header: str | None) -> str | None:
    if header is None:
        return None
    message = "Client context must be a valid Base64-encoded JSON object."
    try:
        decoded = base64.b64decode(header, validate=True)
        if len(decoded) > MAX_CLIENT_CONTEXT or not isinstance(json.loads(decoded), dict):
            raise ValueError(message)
    except (binascii.Error, ValueError):
        raise ValueError(message) from None
    return decoded.decode()


def _throttled(invoke_api: bool) -> Response:
    """Lambda's throttle: the Invoke API's 429 `TooManyRequestsException`, or the 429 a
    function URL answers an HTTP client."""
    if not invoke_api:
        return json_response(429, {"Message": "Rate Exceeded."})
    body = {
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        "Type": "User",
        "message": "Rate Exceeded.",
    }
    return json_response(429, body, [("X-Amzn-ErrorType", "TooManyRequestsException")])


def _api_error(status: int, error_type: str, message: str) -> Response:
    """An error of the Lambda API itself, in the AWS JSON protocol's shape."""
    return json_response(
        status, {"Type": "User", "message": message}, [("X-Amzn-ErrorType", error_type)]
    )
