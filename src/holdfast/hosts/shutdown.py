"""The one SIGTERM path of every host: earn the signal, catch it, wind down within one budget.

Lambda sends SIGTERM (and SIGKILL 500 ms later) only to a runtime that has an extension
registered; without one the process is killed outright. ``holdfast run`` earns it with
:func:`earn` (an internal extension subscribed to no events: it never holds up a freeze); the
managed-runtime host's after-response extension earns it by existing.

:func:`watch` catches it for every host: in a thread of its own under awslambdaric, whose main
thread idles inside the runtime's C client where a Python signal handler would never run; in the
main thread's own handler where that thread runs holdfast's event loop. Every host then winds
down the same way: :class:`Budget` is the one split of :data:`SHUTDOWN_BUDGET` (in-flight
work first, lifespan shutdown the rest), :func:`wind_down` the one coroutine that spends it on an
adapter's loop, and :func:`shut_down` the end of a process whose main thread is not its own
(awslambdaric's): every adapter wound down, then exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from holdfast import pending
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


def watch(*, in_thread: bool = True) -> bool:
    """Take SIGTERM from now on: it calls the callback :func:`handle` registered last, or ends
    the process, status 0, when there is none. ``False`` (and no watch) off the main thread,
    where Python lets no signal handler be installed. Idempotent (the first call decides how).

    ``in_thread``: a thread of its own waits for the signal, for a host whose main thread idles
    inside foreign C code where a Python-level handler would never run (awslambdaric's client).
    Python's C-level handler writes the signal's number to the wakeup fd the moment the signal
    arrives, whatever the main thread is doing; the thread waits on the other end. A host whose
    main thread runs holdfast's event loop (``holdfast run``, ``holdfast proxy``) passes
    ``False``: it only ever waits in calls Python interrupts to run signal handlers (PEP 475),
    so the handler takes the signal itself, and there is no thread for every freeze to stop and
    every thaw to wake. (No signal mask either way: a blocked SIGTERM would be inherited by
    every process the app starts.)
    """
    global _watching, _handler
    if _watching:
        return True
    if threading.current_thread() is not threading.main_thread():
        logger.warning("holdfast: started off the main thread; no SIGTERM shutdown")
        return False
    _watching = True
    if not in_thread:
        signal.signal(signal.SIGTERM, _in_main_thread)
        _handler = _in_main_thread
        return True
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.signal(signal.SIGTERM, _noted)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    threading.Thread(
        target=_wait, args=(reader, writer), name="holdfast-sigterm", daemon=True
    ).start()
    return True


def handle(callback: Callable[[], object]) -> Callable[[], None]:
    """Make ``callback`` what SIGTERM runs (in the watch thread, or in the main thread's signal
    handler: see :func:`watch`); returns a function that withdraws it.

    Called once the app is loaded: an app that set its own handler meanwhile (``signal.signal``
    at import) is told that holdfast's shutdown now depends on it."""
    if _handler is not None and signal.getsignal(signal.SIGTERM) is not _handler:
        logger.warning(
            "the app set its own SIGTERM handler: holdfast's shutdown (lifespan shutdown, the"
            " wind-down of invocations in flight) runs only if that handler calls the one it"
            " replaced (signal.getsignal(signal.SIGTERM) before setting it)"
        )
    _callbacks.append(callback)

    def withdraw() -> None:
        if callback in _callbacks:
            _callbacks.remove(callback)

    return withdraw


_watching = False
_callbacks: list[Callable[[], object]] = []
# The main thread's own handler, when it takes the signal itself (watch(in_thread=False)).
_handler: Callable[[int, Any], None] | None = None


def _noted(signum: int, frame: object) -> None:
    """The Python-level handler beside a watch thread (the main thread runs it whenever it next
    runs Python code): nothing to do, the watch thread has the signal already."""


def _in_main_thread(signum: int, frame: object) -> None:
    """The Python-level handler without a watch thread: the main thread takes the signal."""
    _terminate()


def _wait(reader: socket.socket, writer: socket.socket) -> None:
    # `writer` stays referenced here: its fd is the process's wakeup fd.
    while signal.SIGTERM not in reader.recv(64):
        pass  # another signal with a Python handler (SIGINT) woke us
    _terminate()


def _terminate() -> None:
    logger.info("SIGTERM: shutting down")
    if _callbacks:
        _callbacks[-1]()
    else:
        logging.shutdown()
        os._exit(0)


class Budget:
    """The one split of the shutdown budget: in-flight work may take all of it but
    :data:`LIFESPAN_SHARE` (all of it when there is no lifespan to shut down), lifespan shutdown
    whatever is left."""

    __slots__ = ("_deadline", "_in_flight_until")

    def __init__(self, total: float = SHUTDOWN_BUDGET, *, lifespan: bool = True) -> None:
        now = time.monotonic()
        self._deadline = now + total
        self._in_flight_until = now + (total * (1 - LIFESPAN_SHARE) if lifespan else total)

    def for_in_flight(self) -> float:
        """Seconds in-flight work may still take."""
        return max(0.0, self._in_flight_until - time.monotonic())

    def remaining(self) -> float:
        """Seconds left of the whole budget."""
        return max(0.0, self._deadline - time.monotonic())


async def wind_down(
    adapter: Adapter | None, budget: Budget, in_flight: Collection[asyncio.Future[Any]] = ()
) -> None:
    """On ``adapter``'s loop: let ``in_flight`` work (invocations still answering or draining)
    finish within its share of ``budget``, cancel what is still running then (its own drain
    reports it), and run the adapter's lifespan shutdown with what is left."""
    running = [future for future in in_flight if not future.done()]
    if running:
        _, late = await asyncio.wait(running, timeout=budget.for_in_flight())
        for future in late:
            future.cancel()
        if late:
            logger.error("SIGTERM: %d invocation(s) still running were cancelled", len(late))
            await asyncio.wait(late, timeout=budget.remaining())
    if adapter is None:
        return
    try:
        await adapter.shutdown(budget.remaining())
    except Exception:
        logger.exception("lifespan shutdown failed")


def shut_down(adapters: Sequence[Adapter], budget: Budget) -> None:
    """SIGTERM under awslambdaric (in the watch thread): wind every adapter down on its own loop
    within what is left of ``budget``, then end the process, status 0."""
    try:
        for adapter in adapters:
            adapter.engine.run(wind_down(adapter, budget))
    except Exception:
        logger.exception("shutdown failed")
    finally:
        pending.name_cut_threads("SIGTERM")
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
