"""Proxy mode's after-response guarantee: the app reports when each request's work is done.

Under ``holdfast proxy`` the app runs in its own server (uvicorn, gunicorn, ...), out of
holdfast's sight: once it has answered, nothing tells the proxy whether the request still has
work running (FastAPI ``BackgroundTasks``), so without help the proxy asks Lambda for the next
event at once and the environment freezes with that work half done — exactly what happens under
the Lambda Web Adapter. Add the middleware to the app in one line::

    app.add_middleware(holdfast.CompletionMiddleware)     # FastAPI / Starlette
    app = holdfast.CompletionMiddleware(app)               # any ASGI app
    app = holdfast.WSGICompletionMiddleware(app)           # Django, Flask, ...

and the proxy waits (bounded by the invocation's deadline) until the request's work has finished
before it asks for the next event.

The protocol, on loopback only: the proxy starts the app with ``HOLDFAST_COMPLETION_ADDRESS``
(``127.0.0.1:PORT``, a UDP socket of the proxy) and a random ``HOLDFAST_COMPLETION_TOKEN``; it
sends each request with a ``holdfast-request-id`` header (client copies are replaced). The
middleware marks the response with ``holdfast-completion: 1`` (the proxy removes it), so the
proxy knows a report will come, and when the app's call has returned — which in Starlette is
after the background tasks have run — sends one datagram ``TOKEN REQUEST_ID``. Outside proxy
mode (no address in the environment) the middlewares do nothing.

The ASGI middleware also makes :func:`holdfast.after_response` available to the proxied app:
such work starts when the response is complete and is part of what the report waits for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from holdfast import pending as _pending
from holdfast._types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("holdfast")

ADDRESS_VARIABLE = "HOLDFAST_COMPLETION_ADDRESS"
TOKEN_VARIABLE = "HOLDFAST_COMPLETION_TOKEN"
REQUEST_ID_HEADER = b"holdfast-request-id"
MARK_HEADER = b"holdfast-completion"
_WSGI_REQUEST_ID = "HTTP_" + REQUEST_ID_HEADER.decode().upper().replace("-", "_")


class _Reporter:
    """Sends completion reports to the proxy named in the environment (if any)."""

    def __init__(self) -> None:
        self.address: tuple[str, int] | None = None
        self._token = os.environ.get(TOKEN_VARIABLE, "").encode()
        raw = os.environ.get(ADDRESS_VARIABLE, "")
        host, _, port = raw.rpartition(":")
        if host and port.isascii() and port.isdigit() and self._token:
            self.address = (host, int(port))
        self._socket: socket.socket | None = None

    def report(self, request_id: str) -> None:
        if self.address is None:
            return
        if self._socket is None:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._socket.sendto(self._token + b" " + request_id.encode(), self.address)
        except OSError as exc:  # the proxy is gone: nobody waits for the report any more
            logger.warning("could not report request %s complete: %s", request_id, exc)


class CompletionMiddleware:
    """ASGI middleware: report to ``holdfast proxy`` when each request's work has finished."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._reporter = _Reporter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = self._request_id(scope)
        if request_id is None:
            await self.app(scope, receive, send)
            return
        work = _pending.PendingWork(request_id, asyncio.get_running_loop())

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (MARK_HEADER, b"1")]
                message = {**message, "headers": headers}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                work.response_sent()

        token = _pending.bind(work)
        try:
            await self.app(scope, receive, send_marked)
        finally:
            _pending.unbind(token)
            try:
                if work:
                    await work.drain(None)  # the proxy bounds its wait by the deadline
            finally:
                self._reporter.report(request_id)

    def _request_id(self, scope: Scope) -> str | None:
        if scope["type"] != "http" or self._reporter.address is None:
            return None
        for name, value in scope.get("headers", ()):
            if name == REQUEST_ID_HEADER:
                return bytes(value).decode("latin-1")
        return None


class WSGICompletionMiddleware:
    """WSGI middleware: report to ``holdfast proxy`` when each request has finished — when the
    server closes the response iterable, after the last byte went out (PEP 3333)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self._reporter = _Reporter()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request_id = environ.get(_WSGI_REQUEST_ID) if self._reporter.address else None
        if not request_id:
            return self.app(environ, start_response)

        def start_marked(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            return start_response(status, [*headers, (MARK_HEADER.decode(), "1")], *exc_info)

        try:
            body = self.app(environ, start_marked)
        except BaseException:
            self._reporter.report(request_id)
            raise
        return _ReportOnClose(body, lambda: self._reporter.report(request_id))


class _ReportOnClose:
    """The app's response iterable; closing it closes the app's and then reports."""

    def __init__(self, body: Iterable[bytes], report: Callable[[], None]) -> None:
        self._body = body
        self._report = report

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._report()


class CompletionListener(asyncio.DatagramProtocol):
    """The proxy's side: receives the reports and lets the proxy wait for one request's."""

    #: Reports that arrived before anyone waited for them (the app was quick), kept this long.
    _EARLY_LIMIT = 4096

    def __init__(self, token: str) -> None:
        self.token = token.encode()
        self.address: tuple[str, int] | None = None
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._early: OrderedDict[str, None] = OrderedDict()
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        self.address = transport.get_extra_info("sockname")[:2]

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        token, _, request_id = data.partition(b" ")
        if token != self.token or not request_id:
            return  # not from our app: ignored
        key = request_id.decode("latin-1")
        waiter = self._waiters.pop(key, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
            return
        self._early[key] = None
        while len(self._early) > self._EARLY_LIMIT:
            self._early.popitem(last=False)

    async def wait(self, request_id: str) -> None:
        """Return once the app reported ``request_id`` complete (the caller bounds the wait)."""
        if request_id in self._early:
            del self._early[request_id]
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = waiter
        try:
            await waiter
        finally:
            self._waiters.pop(request_id, None)
