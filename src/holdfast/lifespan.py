"""ASGI lifespan: startup once per execution environment, shutdown when it ends."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from holdfast._types import ASGIApp, Message
from holdfast.errors import LifespanError

logger = logging.getLogger("holdfast")

__all__ = ["Lifespan", "LifespanMode"]

LifespanMode = Literal["auto", "on", "off"]


class Lifespan:
    """Runs the app's lifespan protocol on the environment's loop.

    ``auto`` treats an app that rejects the lifespan scope as having none; ``on`` makes that an
    error; ``off`` never sends it. ``startup.failed`` is an error in every mode.
    """

    def __init__(self, app: ASGIApp, mode: LifespanMode) -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', got {mode!r}")
        self.app = app
        self.mode = mode
        #: State the app stores at startup; each request's scope gets a shallow copy.
        self.state: dict[str, Any] = {}
        self.supported = False
        self._incoming: asyncio.Queue[Message] | None = None
        self._outgoing: asyncio.Queue[Message] | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        if self.mode == "off":
            return
        self._incoming, self._outgoing = asyncio.Queue(), asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._incoming.put({"type": "lifespan.startup"})
        message = await self._outgoing.get()
        if message["type"] == "lifespan.startup.complete":
            self.supported = True
        elif message["type"] == "lifespan.startup.failed" or self.mode == "on":
            raise LifespanError(f"lifespan startup failed: {message.get('message', '')}")

    async def shutdown(self, timeout: float | None = None) -> None:
        if not self.supported or self._incoming is None or self._outgoing is None:
            return
        self.supported = False
        await self._incoming.put({"type": "lifespan.shutdown"})
        try:
            message = await asyncio.wait_for(self._outgoing.get(), timeout)
        except TimeoutError:
            logger.error("lifespan shutdown did not finish within %.2f s", timeout)
            return
        if message["type"] == "lifespan.shutdown.failed":
            raise LifespanError(f"lifespan shutdown failed: {message.get('message', '')}")

    async def _run(self) -> None:
        assert self._incoming is not None and self._outgoing is not None
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        scope["state"] = self.state
        try:
            await self.app(scope, self._incoming.get, self._send)
        except BaseException as exc:
            if self.mode == "on" or self.supported:
                logger.exception("lifespan protocol failed")
            else:
                logger.debug("the app does not support the ASGI lifespan protocol: %r", exc)
            await self._outgoing.put({"type": "lifespan.error", "message": repr(exc)})
            if not isinstance(exc, Exception):
                raise
        else:
            await self._outgoing.put({"type": "lifespan.returned", "message": "app returned"})

    async def _send(self, message: Message) -> None:
        assert self._outgoing is not None
        await self._outgoing.put(message)
