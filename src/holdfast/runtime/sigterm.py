"""The one SIGTERM path of every host: earn the signal, catch it, wind down within one budget.

Lambda sends SIGTERM (and SIGKILL 500 ms later) only to a runtime that has an extension
registered; without one the process is killed outright. ``holdfast run`` earns it with
:func:`earn` (an internal extension subscribed to no events: it never holds up a freeze); the
managed-runtime host's after-response extension earns it by existing.

:func:`watch` catches it the same way for both hosts: SIGTERM is blocked in the main thread
(which under awslambdaric idles inside the runtime's C client, where a Python signal handler would
never run) and taken by a ``sigwait`` thread. :func:`wind_down` then finishes what is in flight
and runs lifespan shutdown, all within :data:`SHUTDOWN_BUDGET`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from holdfast.runtime.client import RuntimeClient

if TYPE_CHECKING:
    from holdfast.adapter import Adapter

logger = logging.getLogger("holdfast")

EXTENSION_NAME = "holdfast-shutdown"
#: Seconds a host may spend after SIGTERM: Lambda kills a runtime with an internal extension
#: 500 ms after it; the rest is kept for the process to exit and flush its logs.
SHUTDOWN_BUDGET = 0.4
#: Of the budget, what lifespan shutdown keeps when in-flight work is waited for first.
LIFESPAN_SHARE = 0.25


async def earn(address: str) -> asyncio.Task[None] | None:
    """Register the no-event extension (before the runtime's first ``/next``); its long poll runs
    in the returned task. ``None`` when registration failed: the runtime then gets no SIGTERM."""
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


def watch(on_sigterm: Callable[[], None]) -> bool:
    """Call ``on_sigterm()`` in a thread of its own when SIGTERM arrives; ``False`` (and no
    watch) when called off the main thread, where the signal mask cannot be set for the process.

    Threads inherit the mask of the thread that starts them: call this before starting threads,
    so none of them takes the signal and dies of its default action instead.
    """
    if threading.current_thread() is not threading.main_thread():
        logger.warning("holdfast: started off the main thread; no SIGTERM shutdown")
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def wait() -> None:
        signal.sigwait({signal.SIGTERM})
        logger.info("SIGTERM: shutting down")
        on_sigterm()

    threading.Thread(target=wait, name="holdfast-sigterm", daemon=True).start()
    return True


async def wind_down(
    adapter: Adapter | None,
    in_flight: Collection[asyncio.Future[Any]] = (),
    budget: float = SHUTDOWN_BUDGET,
) -> None:
    """Let ``in_flight`` work (invocations still answering or draining) finish, then run the
    adapter's lifespan shutdown; all of it within ``budget`` seconds. What is still running
    when its share is spent is cancelled (and reported by its own drain)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    running = [future for future in in_flight if not future.done()]
    if running:
        lifespan_share = budget * LIFESPAN_SHARE if adapter is not None else 0.0
        _, late = await asyncio.wait(running, timeout=max(0.0, budget - lifespan_share))
        for future in late:
            future.cancel()
        if late:
            logger.error("SIGTERM: %d invocation(s) still running were cancelled", len(late))
            await asyncio.wait(late, timeout=max(0.0, deadline - loop.time()))
    if adapter is None:
        return
    try:
        await adapter.shutdown(max(0.0, deadline - loop.time()))
    except Exception:
        logger.exception("lifespan shutdown failed")
