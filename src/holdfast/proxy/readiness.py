"""Waiting for the app to be ready, as the Lambda Web Adapter does (lwa-compat.md §4).

HTTP mode: ``GET http://HOST:PORT/PATH`` until the status is in the healthy set (default
100-499; a connection error is "not ready"); TCP mode: until a connection opens. Retried every
10 ms; every 2 s a warning says how long the app has not been ready, and where it is polled.
"""

from __future__ import annotations

import asyncio
import logging
import time

from holdfast.config import ProxySettings

logger = logging.getLogger("holdfast")

RETRY_INTERVAL = 0.01
LOG_INTERVAL = 2.0


class NotReady(Exception):
    """The app did not become ready in time."""


async def check(upstream: ProxySettings) -> bool:
    """One readiness probe."""
    try:
        reader, writer = await asyncio.open_connection(upstream.host, upstream.readiness_port)
    except OSError:
        return False
    try:
        if upstream.readiness_protocol == "tcp":
            return True
        request = (
            f"GET {upstream.readiness_path} HTTP/1.1\r\n"
            f"Host: {upstream.host}:{upstream.readiness_port}\r\n"
            "User-Agent: holdfast-readiness\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("latin-1"))
        await writer.drain()
        line = await reader.readline()
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            return False
        return int(parts[1]) in upstream.healthy_status
    except (OSError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()


async def wait_ready(
    upstream: ProxySettings, timeout: float | None, *, alive: asyncio.Future[int] | None = None
) -> None:
    """Probe until the app is ready; :class:`NotReady` after ``timeout`` seconds (``None``: no
    bound) or as soon as the app's process has exited (``alive`` done)."""
    started = time.monotonic()
    checkpoint = started + LOG_INTERVAL
    while not await check(upstream):
        now = time.monotonic()
        if alive is not None and alive.done():
            raise NotReady(f"the app exited with status {alive.result()} before it was ready")
        if timeout is not None and now - started >= timeout:
            raise NotReady(f"the app was not ready after {timeout:g} s")
        if now >= checkpoint:
            # A warning, so it shows without any logging set up: a server listening on another
            # port than the one polled is the usual first-run mistake (docs/troubleshooting.md).
            logger.warning(
                "app is not ready after %d ms (polling %s:%d; its port is PORT / AWS_LWA_PORT)",
                int((now - started) * 1000),
                upstream.host,
                upstream.readiness_port,
            )
            checkpoint += LOG_INTERVAL
        await asyncio.sleep(RETRY_INTERVAL)
