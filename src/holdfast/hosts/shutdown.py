"""The one SIGTERM path of every host: earn the signal, catch it, wind down within one budget.

Lambda sends SIGTERM (and SIGKILL 500 ms later) only to a runtime that has an extension
registered; without one the process is killed outright. ``holdfast run`` earns it with
:func:`earn` (an internal extension subscribed to no events: it never holds up a freeze); the
managed-runtime host's after-response extension earns it by existing.

:func:`watch` catches it the same way for both hosts, in a thread of its own: under awslambdaric
the main thread idles inside the runtime's C client, where a Python signal handler would never
run. :func:`wind_down` then finishes what is in flight and runs lifespan shutdown, all within
:data:`SHUTDOWN_BUDGET`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
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


def watch() -> bool:
    """Take SIGTERM in a thread of its own from now on: it calls the callback :func:`handle`
    registered last, or ends the process, status 0, when there is none. ``False`` (and no
    watch) off the main thread, where Python lets no signal handler be installed. Idempotent.

    Python's C-level signal handler writes the signal's number to the wakeup fd the moment the
    signal arrives, whatever the main thread is doing; a thread waits on the other end. (No
    signal mask: a blocked SIGTERM would be inherited by every process the app starts.)
    """
    global _watching
    if _watching:
        return True
    if threading.current_thread() is not threading.main_thread():
        logger.warning("holdfast: started off the main thread; no SIGTERM shutdown")
        return False
    _watching = True
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.signal(signal.SIGTERM, _in_main_thread)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    threading.Thread(
        target=_wait, args=(reader, writer), name="holdfast-sigterm", daemon=True
    ).start()
    return True


def handle(callback: Callable[[], object]) -> Callable[[], None]:
    """Make ``callback`` what SIGTERM runs (in the watch thread); returns a function that
    withdraws it."""
    _callbacks.append(callback)

    def withdraw() -> None:
        if callback in _callbacks:
            _callbacks.remove(callback)

    return withdraw


_watching = False
_callbacks: list[Callable[[], object]] = []


def _in_main_thread(signum: int, frame: object) -> None:
    """The Python-level handler (the main thread runs it whenever it next runs Python code):
    nothing to do, the watch thread has it already."""


def _wait(reader: socket.socket, writer: socket.socket) -> None:
    # `writer` stays referenced here: its fd is the process's wakeup fd.
    while signal.SIGTERM not in reader.recv(64):
        pass  # another signal with a Python handler (SIGINT) woke us
    logger.info("SIGTERM: shutting down")
    if _callbacks:
        _callbacks[-1]()
    else:
        logging.shutdown()
        os._exit(0)


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
