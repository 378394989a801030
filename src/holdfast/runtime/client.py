"""The Lambda Runtime API client: HTTP/1.1 on one kept-alive connection, for asyncio.

Every call the runtime makes to ``$AWS_LAMBDA_RUNTIME_API`` goes through a
:class:`RuntimeClient`: ``next``, ``response`` (buffered or streamed with chunked encoding and
error trailers), ``error``, ``init/error`` and SnapStart's ``restore/next`` and ``restore/error``.
Concurrent workers each own a client, so a connection only ever carries one worker's requests:
one at a time, except that a buffered response owing no after-response work has the next
``/next`` pipelined right behind it (see :meth:`RuntimeClient.respond`).

No call has a timeout: ``/next`` blocks for as long as Lambda keeps the environment idle, and the
process may be frozen in the middle of any call. The connection (:mod:`.connection`) waits for an
answer in its socket, not in a turn of the event loop, whenever the loop has nothing else to do.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from holdfast.errors import HoldfastError
from holdfast.http11.grammar import ProtocolError, body_framing, parse_fields
from holdfast.http11.response import ResponseHead, body_chunks, read_response
from holdfast.runtime.connection import Connection

if TYPE_CHECKING:
    from holdfast.runtime.report import ErrorReport

_API = "/2018-06-01/runtime"
_NEXT = f"{_API}/invocation/next"
_EXTENSIONS = "/2020-01-01/extension"
_TELEMETRY = "/2022-07-01/telemetry"
_ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
_ERROR_BODY = "Lambda-Runtime-Function-Error-Body"
_INVOCATION_ID = "Lambda-Runtime-Invocation-Id"
_USER_AGENT = "holdfast/{} (Python {}.{}.{})".format("0.1", *sys.version_info[:3])
_MAX_TIMEOUT_MS = 900_000
# Bodies up to this size are sent in one write with the request head; larger ones are not copied.
_COALESCE_BYTES = 64 * 1024


class RuntimeAPIError(HoldfastError):
    """The Runtime API refused a call (an unexpected status); ``status`` 5xx means exit."""

    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        self.status = status
        self.body = body
        detail = body[:500].decode("utf-8", "replace")
        super().__init__(f"{method} {path} answered {status}: {detail}")

    @property
    def gone(self) -> bool:
        """410 Gone: the invocation already ended (it timed out); its result is not wanted."""
        return self.status == 410


class InvocationRequest:
    """One event from ``/next``: the payload and the ``Lambda-Runtime-*`` headers."""

    __slots__ = (
        "body",
        "client_context",
        "cognito_identity",
        "content_type",
        "deadline_ms",
        "invocation_id",
        "invoked_function_arn",
        "request_id",
        "tenant_id",
        "trace_id",
    )

    # A plain class, not a dataclass: building dataclasses costs cold-start time at import.
    def __init__(
        self,
        *,
        request_id: str,
        deadline_ms: int,
        invoked_function_arn: str,
        invocation_id: str | None = None,
        trace_id: str | None,
        client_context: str | None,
        cognito_identity: str | None,
        tenant_id: str | None,
        content_type: str,
        body: bytes,
    ) -> None:
        self.request_id = request_id
        #: ``Lambda-Runtime-Invocation-Id``: echoed on the invocation's ``/response`` and
        #: ``/error``, so a late post can never count for another attempt of the request.
        self.invocation_id = invocation_id
        self.deadline_ms = deadline_ms
        self.invoked_function_arn = invoked_function_arn
        self.trace_id = trace_id
        self.client_context = client_context
        self.cognito_identity = cognito_identity
        self.tenant_id = tenant_id
        self.content_type = content_type
        self.body = body


class _Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class RuntimeClient:
    """One worker's connection to the Runtime API (``host:port``)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()):
            raise ValueError(f"AWS_LAMBDA_RUNTIME_API must be host:port, got {address!r}")
        self.address = address
        self._host = host.strip("[]")
        self._port = int(port)
        self._connection: Connection | None = None
        self._host_header = f"Host: {address}\r\nUser-Agent: {_USER_AGENT}\r\n".encode()
        self._next_head = self._head("GET", _NEXT, "Content-Length: 0\r\n")
        # A /next already sent on this connection behind a response (see `respond`).
        self._next_sent = False

    @property
    def next_sent(self) -> bool:
        """Whether a ``/next`` already went out behind the last response (see :meth:`respond`)."""
        return self._next_sent

    # -- the Runtime API ----------------------------------------------------------------------
    async def next(self) -> InvocationRequest:
        """Wait (without a timeout) for the next invocation."""
        if self._next_sent:
            response = await self._read_sent_next()
        else:
            response = await self._call("GET", _NEXT, 200, head=self._next_head)
        headers = response.headers
        return InvocationRequest(
            request_id=headers.get("lambda-runtime-aws-request-id", ""),
            deadline_ms=_deadline(headers.get("lambda-runtime-deadline-ms")),
            invoked_function_arn=headers.get("lambda-runtime-invoked-function-arn", ""),
            invocation_id=headers.get("lambda-runtime-invocation-id") or None,
            trace_id=headers.get("lambda-runtime-trace-id") or None,
            client_context=headers.get("lambda-runtime-client-context") or None,
            cognito_identity=headers.get("lambda-runtime-cognito-identity") or None,
            tenant_id=headers.get("lambda-runtime-aws-tenant-id") or None,
            content_type=headers.get("content-type", "application/json"),
            body=response.body,
        )

    async def respond(
        self,
        request_id: str,
        body: bytes,
        content_type: str = "application/json",
        *,
        invocation_id: str | None = None,
        then_next: bool = False,
    ) -> None:
        """Post a buffered response for ``request_id``.

        ``then_next`` is for an invocation that owes no work after its response: the ``/next``
        request goes out in the same write, right behind the response (HTTP/1.1 pipelining; the
        API answers the two in order), and the following :meth:`next` only reads its answer.
        That saves the round trip between the response's 202 and ``/next``.

        ``invocation_id`` (``Lambda-Runtime-Invocation-Id`` from ``/next``) is echoed, so the
        API can tell a late post for an attempt that timed out (it answers 410 Gone).
        """
        path = f"{_API}/invocation/{request_id}/response"
        headers = f"Content-Type: {content_type}\r\n{_invocation_header(invocation_id)}"
        await self._call("POST", path, 202, body, headers, then_next=then_next)

    async def error(
        self, request_id: str, report: ErrorReport, *, invocation_id: str | None = None
    ) -> None:
        """Report ``request_id`` failed (a function error)."""
        path = f"{_API}/invocation/{request_id}/error"
        await self._post_error(path, report, _invocation_header(invocation_id))

    async def init_error(self, report: ErrorReport) -> None:
        """Report the runtime could not initialise; the process should exit afterwards."""
        await self._post_error(f"{_API}/init/error", report)

    async def restore_next(self) -> None:
        """SnapStart: block across the snapshot until the environment is restored."""
        await self._call("GET", f"{_API}/restore/next", 200)

    async def restore_error(self, report: ErrorReport) -> None:
        """SnapStart: report that the after-restore hooks failed."""
        await self._post_error(f"{_API}/restore/error", report)

    # -- Extensions API (same socket, 2020-01-01) ----------------------------------------------
    async def register_extension(self, name: str, events: list[str]) -> str:
        """Register an internal extension for ``events``; returns its identifier."""
        body = json.dumps({"events": events}).encode()
        headers = f"Lambda-Extension-Name: {name}\r\nContent-Type: application/json\r\n"
        response = await self._call("POST", f"{_EXTENSIONS}/register", 200, body, headers)
        return response.headers.get("lambda-extension-identifier", "")

    async def extension_next(self, identifier: str) -> bytes:
        """Wait (without a timeout) for the extension's next event; returns its JSON."""
        headers = f"Lambda-Extension-Identifier: {identifier}\r\n"
        response = await self._call("GET", f"{_EXTENSIONS}/event/next", 200, headers=headers)
        return response.body

    async def subscribe_telemetry(self, identifier: str, subscription: dict[str, Any]) -> None:
        """Subscribe the extension ``identifier`` to the Telemetry API (during init)."""
        headers = f"Lambda-Extension-Identifier: {identifier}\r\nContent-Type: application/json\r\n"
        body = json.dumps(subscription).encode()
        await self._call("PUT", _TELEMETRY, 200, body, headers)

    def stream(
        self, request_id: str, content_type: str, *, invocation_id: str | None = None
    ) -> ResponseStream:
        """A streamed response for ``request_id``; nothing is sent before its first write."""
        return ResponseStream(self, request_id, content_type, invocation_id)

    async def open(self) -> None:
        """Open the connection ahead of the first call; a failure is left for that call."""
        try:
            await self._connect()
        except OSError:
            pass

    async def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        connection, self._connection = self._connection, None
        self._next_sent = False  # a /next sent on it is lost with it: the next call resends it
        if connection is not None:
            connection.close()

    # -- HTTP/1.1 ------------------------------------------------------------------------------
    async def _post_error(self, path: str, report: ErrorReport, extra: str = "") -> None:
        headers = f"Content-Type: application/json\r\n{_ERROR_TYPE}: {report.category}\r\n"
        await self._call("POST", path, 202, report.body(), headers + extra)

    async def _call(
        self,
        method: str,
        path: str,
        expect: int,
        body: bytes = b"",
        headers: str = "",
        *,
        head: bytes | None = None,
        then_next: bool = False,
    ) -> _Response:
        if head is None:
            head = self._head(method, path, f"{headers}Content-Length: {len(body)}\r\n")
        reused = self._connection is not None
        try:
            response = await self._exchange(head, body, then_next)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            await self.close()
            # A kept-alive connection the server closed while we were idle fails on first use,
            # before the request can have been acted on: that one failure is safe to retry.
            if not reused or _got_response_bytes(exc):
                raise
            response = await self._exchange(head, body, then_next)
        if response.status != expect:
            raise RuntimeAPIError(method, path, response.status, response.body)
        return response

    async def _read_sent_next(self) -> _Response:
        """The answer to the /next sent behind the last response."""
        self._next_sent = False
        try:
            response = await self._read_response()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            await self.close()
            if _got_response_bytes(exc):
                raise
            # As in _call: a connection lost before any byte of the answer is retried once.
            response = await self._exchange(self._next_head, b"")
        if response.status != 200:
            raise RuntimeAPIError("GET", _NEXT, response.status, response.body)
        return response

    async def _exchange(self, head: bytes, body: bytes, then_next: bool = False) -> _Response:
        connection = await self._connect()
        follow = self._next_head if then_next else b""
        if len(body) < _COALESCE_BYTES:
            # One segment: the server gets the request (and the /next behind it) in one read.
            await connection.send(head + body + follow)
        else:
            await connection.send(head)
            await connection.send(body)
            if follow:
                await connection.send(follow)
        self._next_sent = then_next
        return await self._read_response()

    def _head(self, method: str, path: str, headers: str) -> bytes:
        request_line = f"{method} {path} HTTP/1.1\r\n".encode()
        return request_line + self._host_header + headers.encode() + b"\r\n"

    async def _connect(self) -> Connection:
        if self._connection is None:
            self._connection = await Connection.open(self._host, self._port)
        return self._connection

    async def _read_response(self) -> _Response:
        connection = self._connection
        assert connection is not None
        head, body = await read_response(connection.reader)
        headers = head.index
        if not head.keep_alive:
            await self.close()
        return _Response(head.status, headers, body)


class ResponseStream:
    """A response posted as it is produced: chunked encoding, errors after the start in trailers.

    Open it by writing (the request head goes out with the first chunk); :meth:`close` ends it
    normally, :meth:`fail` ends it with the ``Lambda-Runtime-Function-Error-*`` trailers.
    """

    def __init__(
        self,
        client: RuntimeClient,
        request_id: str,
        content_type: str,
        invocation_id: str | None = None,
    ) -> None:
        self._client = client
        self._path = f"{_API}/invocation/{request_id}/response"
        self._headers = (
            "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
            "Transfer-Encoding: chunked\r\n"
            f"Trailer: {_ERROR_TYPE}, {_ERROR_BODY}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"{_invocation_header(invocation_id)}"
        )
        self._connection: Connection | None = None
        self.started = False
        self.closed = False

    async def write(self, chunk: bytes) -> None:
        """Send ``chunk`` now (the request head goes out with the first one)."""
        if not chunk:
            return  # a zero-length chunk would end the body
        await self._send(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    async def close(self) -> None:
        """End the response successfully."""
        await self._finish(b"0\r\n\r\n")

    async def fail(self, report: ErrorReport) -> None:
        """End the response with an error: Lambda reports it although bytes went out already."""
        encoded = base64.b64encode(report.body()).decode()
        trailers = f"0\r\n{_ERROR_TYPE}: {report.category}\r\n{_ERROR_BODY}: {encoded}\r\n\r\n"
        await self._finish(trailers.encode())

    async def _send(self, data: bytes) -> None:
        client = self._client
        # No retry on a broken connection: the stream cannot be replayed. It is the connection
        # this worker just received the event on, so it is not a stale one.
        if self._connection is None:
            self._connection = await client._connect()
            data = client._head("POST", self._path, self._headers) + data
            self.started = True
        elif self._connection is not client._connection:
            raise ConnectionError("the connection of this streamed response was lost")
        try:
            await self._connection.send(data)
        except ConnectionError:
            await client.close()
            raise

    async def _finish(self, last: bytes) -> None:
        if self.closed:
            return
        await self._send(last)
        self.closed = True
        client = self._client
        try:
            response = await client._read_response()
        except (ConnectionError, asyncio.IncompleteReadError):
            await client.close()
            raise
        if response.status != 202:
            raise RuntimeAPIError("POST", self._path, response.status, response.body)


def parse_headers(lines: Iterable[str]) -> dict[str, str]:
    """The header lines of an HTTP head (after its start line), by lower-case name; strict
    (`http11.grammar`): a line HTTP forbids raises `ProtocolError`."""
    block = "".join(f"{line}\r\n" for line in lines if line).encode("latin-1")
    return dict(parse_fields(block))


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str], status: int) -> bytes:
    """The body of an HTTP/1.1 message whose head gave ``headers`` (from `parse_headers`)."""
    fields = list(headers.items())
    length, chunked = body_framing(fields)
    if chunked:
        head = ResponseHead(status, fields, headers, None, True, True)
        return b"".join([chunk async for chunk in body_chunks(reader, head)])
    if length is not None:
        return await reader.readexactly(length)
    if status in (204, 304) or 100 <= status < 200:
        return b""
    headers["connection"] = "close"  # the body runs to the end of the connection
    return await reader.read()


def _invocation_header(invocation_id: str | None) -> str:
    return f"{_INVOCATION_ID}: {invocation_id}\r\n" if invocation_id else ""


def _got_response_bytes(exc: BaseException) -> bool:
    # Broken HTTP came from a server that did answer: retrying would not mend it.
    partial = isinstance(exc, asyncio.IncompleteReadError) and bool(exc.partial)
    return partial or isinstance(exc, ProtocolError)


def _deadline(value: str | None) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        # An API that sends no deadline (Lambda always does): assume Lambda's longest timeout
        # rather than none left, which would cancel every invocation's after-response work.
        return int(time.time() * 1000) + _MAX_TIMEOUT_MS
