"""Request rewrites that settings ask for, as pure functions over raw ASGI headers and paths.

These are the Lambda Web Adapter's rules, shared by the in-process adapter and proxy mode:
``AWS_LWA_AUTHORIZATION_SOURCE`` (a header moved into ``Authorization``) and
``AWS_LWA_REMOVE_BASE_PATH`` (a prefix removed from the path, as LWA 1.1 does it), and — as an
ASGI middleware the adapter installs when asked — ``AWS_LWA_ENABLE_COMPRESSION``.
"""

from __future__ import annotations

import logging

from holdfast import config
from holdfast._types import ASGIApp, Message, RawHeaders, Receive, Scope, Send
from holdfast.sources import HTTPResponse
from holdfast.sources.headers import find_header

logger = logging.getLogger("holdfast")


_missing_sources_said: set[bytes] = set()


def move_authorization(headers: RawHeaders, source: bytes) -> RawHeaders:
    """Headers with ``source``'s value as the one ``authorization`` header.

    A Function URL with IAM auth keeps ``Authorization`` for its own signature, so clients send
    their token in another header. When ``source`` is present, it is removed and its (first)
    value replaces any ``authorization``; when it is missing the headers are left as they are —
    no ``Authorization`` is invented — and a warning is logged, once per environment (every
    request without the header would otherwise say it again).
    """
    value = find_header(headers, source)
    if value is None:
        if source not in _missing_sources_said:
            _missing_sources_said.add(source)
            logger.warning(
                "AWS_LWA_AUTHORIZATION_SOURCE (or HOLDFAST_AUTHORIZATION_SOURCE) names header %r, "
                "missing from a request: Authorization is left as sent (said once)",
                source.decode(),
            )
        return headers
    kept = [(k, v) for k, v in headers if k != source and k != b"authorization"]
    kept.append((b"authorization", value))
    return kept


def strip_base_path(path: str, base_path: str) -> str:
    """``path`` without the (normalised) ``base_path`` in front: removed once, and only on a
    segment boundary (``/api`` leaves ``/apiorder`` alone; ``/api/api/x`` becomes ``/api/x``);
    a path equal to the base becomes ``/``.

    LWA before 1.1 removed the prefix repeatedly and inside segments (``/prod`` turned
    ``/productx`` into ``/uctx``); holdfast does what 1.1 does.
    """
    if not base_path:
        return path
    if path == base_path:
        return "/"
    if path.startswith(base_path) and path[len(base_path)] == "/":
        return path[len(base_path) :]
    return path


class RewriteMiddleware:
    """Applies the request and response rewrites settings ask for around an ASGI app.

    ``authorization_source``: see :func:`move_authorization`. ``compress``: buffered responses
    are compressed as :mod:`holdfast.compression` decides, except those whose status is in
    ``keep_statuses`` (error status codes: their body becomes the error message, so it stays
    readable). A response that cannot be compressed by its head alone (already encoded, an event
    stream, an image) passes straight through without being buffered.

    :func:`wrap` installs it only when a rewrite is configured, so it costs nothing otherwise.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authorization_source: str | None = None,
        compress: bool = False,
        keep_statuses: frozenset[int] = frozenset(),
    ) -> None:
        self.app = app
        self.authorization_source = (
            authorization_source.lower().encode("latin-1") if authorization_source else None
        )
        self.compress = compress
        self.keep_statuses = keep_statuses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.authorization_source is not None:
            scope = dict(scope)
            scope["headers"] = move_authorization(list(scope["headers"]), self.authorization_source)
        if self.compress:
            from holdfast import compression  # only when enabled: gzip costs cold-start time

            encoding = compression.negotiate(find_header(scope["headers"], b"accept-encoding"))
            if encoding is not None:
                send = _CompressingSend(send, encoding, self.keep_statuses)
        await self.app(scope, receive, send)


class _CompressingSend:
    """``send`` that holds the response until its last body chunk, then compresses it."""

    __slots__ = ("_chunks", "_encoding", "_keep", "_passthrough", "_send", "_start")

    def __init__(self, send: Send, encoding: str, keep: frozenset[int]) -> None:
        self._send = send
        self._encoding = encoding
        self._keep = keep
        self._start: Message | None = None
        self._chunks: list[bytes] = []
        self._passthrough = False

    async def __call__(self, message: Message) -> None:
        from holdfast import compression

        kind = message["type"]
        if self._passthrough or kind not in ("http.response.start", "http.response.body"):
            await self._send(message)
        elif kind == "http.response.start":
            headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
            probe = HTTPResponse(message.get("status", 200), headers, b"x" * compression.MIN_SIZE)
            if message.get("status") in self._keep or not compression.compressible(probe):
                self._passthrough = True
                await self._send(message)
            else:
                self._start = {**message, "headers": headers}
        else:
            self._chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                await self._flush()

    async def _flush(self) -> None:
        from holdfast import compression

        start = self._start
        assert start is not None, "http.response.body before http.response.start"
        response = HTTPResponse(start["status"], start["headers"], b"".join(self._chunks))
        self._chunks = []
        response = compression.compress_as(response, self._encoding)
        await self._send({**start, "headers": response.headers})
        await self._send({"type": "http.response.body", "body": response.body, "more_body": False})


def wrap(
    app: ASGIApp,
    *,
    authorization_source: str | None = None,
    compress: bool | None = None,
    keep_statuses: frozenset[int] = frozenset(),
) -> ASGIApp:
    """``app`` with the rewrites its settings ask for (arguments, then the environment)."""
    source = config.authorization_source(authorization_source)
    streaming = config.invoke_mode() == "response_stream"
    enabled = config.compression(compress, streaming=streaming)
    if source is None and not enabled:
        return app
    return RewriteMiddleware(
        app, authorization_source=source, compress=enabled, keep_statuses=keep_statuses
    )
