"""The proxy as an ASGI app: each request the adapter decodes is forwarded to the app's server.

``holdfast proxy`` runs this app under the ordinary :class:`holdfast.Adapter` and custom runtime,
so proxy mode translates events and responses exactly as in-process mode does (one path: the
codecs, error status codes, base path, compression, streaming, pending work). Its lifespan
startup starts the app's command and waits for readiness; its shutdown stops the command.

After a response, if the app carries :class:`holdfast.completion.CompletionMiddleware`, the
proxy's coroutine goes on waiting for the app's completion report: the adapter counts that as
the invocation's after-response work, so the runtime asks for the next event only once the
app's work is done (or the deadline is near).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import sys
import uuid
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from holdfast._types import Message, Receive, Scope, Send
from holdfast.completion import (
    ADDRESS_VARIABLE,
    MARK_HEADER,
    REQUEST_ID_HEADER,
    TOKEN_VARIABLE,
    CompletionListener,
)
from holdfast.config import ASYNC_INIT_WAIT, ProxySettings
from holdfast.proxy import readiness
from holdfast.proxy.process import AppProcess
from holdfast.proxy.upstream import Upstream, UpstreamError

logger = logging.getLogger("holdfast")

# Path characters that stay literal when a path is sent on (RFC 3986 pchar, "/" and escapes).
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
# A path of nothing but characters quoting leaves as they are (letters, digits, _PATH_SAFE).
_PLAIN_PATH = re.compile(rb"/[A-Za-z0-9" + re.escape(_PATH_SAFE.encode()) + rb"]*")
#: Seconds the app gets to exit after SIGTERM before it is killed (Lambda allows 500 ms).
STOP_TIMEOUT = 0.3
_BAD_GATEWAY = b"Bad Gateway"
#: Seconds an unreachable app gets to show it has exited, before the client gets a 502.
_CRASH_GRACE = 0.2


class ProxyApp:
    """Forward HTTP requests to ``command``'s server, described by ``settings``.

    ``reuse`` allows keeping idle connections to the app for the pool idle timeout: only safe
    when the environment does not freeze between invocations; otherwise an idle connection is
    kept only for back-to-back invocations. ``exclusive``: one invocation at a time, so the
    app's answer may be awaited off the event loop (see :mod:`holdfast.proxy.upstream`).
    """

    def __init__(
        self,
        command: Sequence[str],
        settings: ProxySettings,
        *,
        reuse: bool = False,
        exclusive: bool = False,
        async_init: bool | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not command:
            raise ValueError("proxy mode needs the command that starts the app's server")
        self.command = list(command)
        self.settings = settings
        self.upstream = Upstream(
            settings.host,
            settings.port,
            reuse=reuse,
            idle_timeout=settings.pool_idle_timeout,
            exclusive=exclusive,
        )
        self.async_init = settings.async_init if async_init is None else async_init
        self.listener = CompletionListener(secrets.token_hex(16))
        self.process: AppProcess | None = None
        self._env = dict(os.environ if env is None else env)
        self._ready = False
        self._exited: asyncio.Future[int] | None = None
        self._stopping = False

    # -- ASGI ---------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._forward(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise RuntimeError(f"the proxy does not handle {scope['type']!r} scopes")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- the app's process ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start the app's command and wait until it is ready (or, with async init, at most
        9.8 s: the first request then waits for the rest)."""
        await self.listener.start()
        assert self.listener.address is not None
        host, port = self.listener.address
        env = {
            **self._env,
            ADDRESS_VARIABLE: f"{host}:{port}",
            TOKEN_VARIABLE: self.listener.token.decode(),
        }
        self.process = await AppProcess.start(self.command, env)
        self._exited = asyncio.ensure_future(self._watch(self.process))
        timeout = self.settings.readiness_timeout
        if self.async_init:
            timeout = ASYNC_INIT_WAIT if timeout is None else min(timeout, ASYNC_INIT_WAIT)
        try:
            await readiness.wait_ready(self.settings, timeout, alive=self._exited)
        except readiness.NotReady:
            if not self.async_init or self._exited.done():
                raise
            logger.info("the app is not ready yet: init ends, the first request waits for it")
            return
        self._ready = True

    async def _watch(self, process: AppProcess) -> int:
        status = await process.exited
        if not self._stopping and self._ready:
            # The function cannot answer any more: end the environment as Lambda ends one whose
            # runtime exits, rather than answering 502 to everything that comes next.
            logger.error("the app's process exited with status %d: the proxy exits", status)
            sys.stderr.flush()
            os._exit(status or 1)
        return status

    async def stop(self) -> None:
        """Stop the app: SIGTERM, then SIGKILL if it has not exited within ``STOP_TIMEOUT``."""
        self._stopping = True
        self.upstream.close()
        self.listener.close()
        if self.process is not None:
            await self.process.stop(STOP_TIMEOUT)

    async def _wait_until_ready(self) -> None:
        assert self._exited is not None
        await readiness.wait_ready(self.settings, None, alive=self._exited)
        self._ready = True

    # -- one request ----------------------------------------------------------------------------
    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._ready:
            await self._wait_until_ready()
        body = await _request_body(receive)
        request_id = _request_id(scope)
        try:
            response = await self.upstream.request(
                scope["method"],
                _target(scope),
                scope["headers"],
                body,
                own=[(REQUEST_ID_HEADER, request_id.encode("latin-1", "replace"))],
            )
        except UpstreamError as exc:
            logger.error("request %s: %s", request_id, exc)
            if self._exited is not None:
                # A server that crashed takes the environment with it (see _watch) before
                # anything is answered, as a crashed runtime would; give its exit a moment.
                await asyncio.wait({self._exited}, timeout=_CRASH_GRACE)
            await _send_bad_gateway(send)
            return
        # The app's completion mark is the proxy's business, not the client's.
        out = [header for header in response.headers if header[0] != MARK_HEADER]
        marked = len(out) < len(response.headers)
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        # With a known length, the chunk that completes the body is the last message (one
        # message less through the adapter); otherwise an empty one ends the body.
        remaining = response.length
        async for chunk in response.body():
            if remaining is not None:
                remaining -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": remaining != 0})
        if remaining != 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        if marked:
            # After-response work of the app: the adapter drains this, bounded by the deadline.
            await self.listener.wait(request_id)


async def _request_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _request_id(scope: Scope) -> str:
    context = scope.get("aws.context")
    request_id = getattr(context, "aws_request_id", None)
    return str(request_id) if request_id else str(uuid.uuid4())


def _target(scope: Scope) -> str:
    """The request target sent to the app: the path below the root path, then the query."""
    target = _path(scope)
    query = bytes(scope.get("query_string", b""))
    # No "?" for an empty query (LWA #657).
    return f"{target}?{query.decode('latin-1')}" if query else target


def _path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    raw_path = bytes(scope.get("raw_path") or path.encode())
    if not root and _PLAIN_PATH.fullmatch(raw_path):
        return raw_path.decode("ascii")  # quoting leaves it as it is: the usual path
    raw = raw_path.decode("utf-8", "surrogateescape")
    if root:
        encoded_root = quote(root, safe=_PATH_SAFE)
        if raw.startswith(encoded_root):
            raw = raw[len(encoded_root) :]
        else:
            raw = path[len(root) :] if path.startswith(root) else path
    target = quote(raw or "/", safe=_PATH_SAFE, encoding="utf-8", errors="surrogateescape")
    return target if target.startswith("/") else "/" + target


async def _send_bad_gateway(send: Send) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "http.response.start", "status": 502, "headers": headers})
    await send({"type": "http.response.body", "body": _BAD_GATEWAY, "more_body": False})
