"""The adapter's loop inside the Azure Functions worker.

The worker runs async functions on its own event loop; an `Adapter` runs its app on its own
(`adapter.engine.loop`, which `Adapter.begin` insists on). A daemon thread steps the adapter's
loop (`Engine.run_in_background`), and the worker's coroutines submit work to it: one thread
hop per call, tens of microseconds against the milliseconds of Azure's HTTP proxying.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from holdfast.adapter import Adapter

T = TypeVar("T")

_started: dict[int, AdapterLoop] = {}
_lock = threading.Lock()


class AdapterLoop:
    """Runs coroutines on one adapter's loop from any other loop or thread."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.loop = adapter.engine.loop
        self._stop: asyncio.Future[None] | None = None
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="holdfast-azure-loop", daemon=True
        )
        self._thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        async def until_stopped() -> None:
            self._stop = self.loop.create_future()
            ready.set()
            await self._stop

        try:
            self.adapter.engine.run_in_background(until_stopped())
        except (asyncio.CancelledError, RuntimeError):
            pass  # the adapter closed its loop (interpreter exit): nothing is left to run

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` run on the adapter's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def call(self, fn: Any, *args: Any) -> None:
        """Call `fn(*args)` on the adapter's loop, soon (no waiting)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        def finish() -> None:
            if self._stop is not None and not self._stop.done():
                self._stop.set_result(None)

        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(finish)
        self._thread.join(5)


def loop_for(adapter: Adapter) -> AdapterLoop:
    """The one `AdapterLoop` of `adapter` in this process, started on first use."""
    with _lock:
        running = _started.get(id(adapter))
        if running is None or running.adapter is not adapter:
            running = _started[id(adapter)] = AdapterLoop(adapter)
        return running
