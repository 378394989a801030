"""Earn the SIGTERM that lets lifespan shutdown run when Lambda ends the environment.

Lambda sends SIGTERM (and waits 500 ms before SIGKILL) only to a runtime that has an extension
registered; without one the process is killed outright. An internal extension subscribed to no
events costs one request at init and a long poll that never returns: with no INVOKE
subscription, it never holds up a freeze.
"""

from __future__ import annotations

import asyncio
import logging

from holdfast.runtime.client import RuntimeClient

logger = logging.getLogger("holdfast")

EXTENSION_NAME = "holdfast-shutdown"


async def register(address: str) -> asyncio.Task[None] | None:
    """Register the extension (before the runtime's first ``/next``); its long poll runs in the
    returned task. ``None`` when registration failed: the runtime then works without SIGTERM."""
    client = RuntimeClient(address)
    try:
        identifier = await client.register_extension(EXTENSION_NAME, [])
    except Exception as exc:
        logger.warning("no SIGTERM at shutdown: extension registration failed: %s", exc)
        await client.close()
        return None
    return asyncio.get_running_loop().create_task(_poll(client, identifier))


async def _poll(client: RuntimeClient, identifier: str) -> None:
    # Init ends only once every registered extension has called next: so call it, and keep
    # calling (no event is ever due, but a spurious one must not end the poll).
    try:
        while True:
            await client.extension_next(identifier)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        logger.debug("the shutdown extension stopped polling: %s", exc)
    finally:
        await client.close()
