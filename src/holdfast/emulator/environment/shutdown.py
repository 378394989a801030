"""Shutdown and reset: SIGTERM or SIGKILL, the SHUTDOWN event, the window, the kill."""

from __future__ import annotations

import asyncio
import signal
import time

from ..sandbox import Extension, Sandbox
from .base import first
from .platform_telemetry import PlatformTelemetry

INTERNAL_SHUTDOWN_WINDOW = 0.5
EXTERNAL_SHUTDOWN_WINDOW = 2.0
# AWS documents no figure for Managed Instances; the emulator gives the runtime this long.
MANAGED_INSTANCES_SHUTDOWN_WINDOW = 2.0


class Shutdown(PlatformTelemetry):
    """Ends an environment's processes as Lambda does."""

    async def _shutdown(self, reason: str) -> None:
        """End the processes as Lambda does; `reason` is spindown, timeout or failure.

        With no extension the runtime is killed at once. A spindown gives the runtime a SIGTERM
        and a window (500 ms with internal extensions, 2 s with external ones); a reset kills
        the runtime at once and gives external extensions their SHUTDOWN event and window.
        """
        sandbox, runtime = self._sandbox, self._runtime
        if sandbox is not None and runtime is not None and runtime.returncode is None:
            self._thaw()
            window = _shutdown_window(sandbox)
            if sandbox.concurrent:
                # Managed Instances: the runtime always gets SIGTERM and time to finish.
                window = max(window, MANAGED_INSTANCES_SHUTDOWN_WINDOW)
            if reason == "spindown" and window:
                runtime.send_signal(signal.SIGTERM)
            else:
                runtime.kill()
            if window:
                deadline = time.monotonic() + window
                deadline_ms = int((time.time() + window) * 1000)
                # Telemetry still buffered (the last invocation's report) reaches the
                # subscribers before SHUTDOWN does, inside the same window. Only what is
                # buffered now is waited for: a listener whose own log lines are telemetry
                # would otherwise hold SHUTDOWN back batch after batch.
                await first(sandbox.telemetry.flush(), deadline, ())
                targets = sandbox.shutdown(reason, deadline_ms)
                await first(self._shutdown_acknowledged(sandbox, targets), deadline, ())
        elif sandbox is not None and sandbox.has_external_extensions:
            # The runtime is gone already; the extensions still get their telemetry.
            self._thaw()
            await first(sandbox.telemetry.flush(), time.monotonic() + EXTERNAL_SHUTDOWN_WINDOW, ())
        await self._group.kill()
        for output in self._outputs:
            output.close()
        self._outputs = []
        self._runtime_output = None
        if sandbox is not None:
            await sandbox.telemetry.close()
        self._api.sandbox = None
        self._api.drop_connections()
        self._sandbox = None
        self._runtime = None
        self._extensions = []
        self._init_phase = "init"
        self._awaiting_restore = False

    async def _shutdown_acknowledged(self, sandbox: Sandbox, targets: list[Extension]) -> None:
        """The runtime has exited and the extensions took SHUTDOWN and called `next` (or exited)."""
        if self._runtime is not None:
            await self._runtime.wait()
        self._drain_runtime_output()
        # What the runtime left in the buffers reaches the subscribers inside the window.
        await sandbox.telemetry.flush()
        if not targets:
            return
        acknowledged: asyncio.Future[object] = asyncio.ensure_future(
            sandbox.until(lambda: all(t.waiting for t in targets))
        )
        exited: asyncio.Future[object] = asyncio.ensure_future(
            asyncio.gather(*(p.wait() for p in self._extensions))
        )
        try:
            await asyncio.wait({acknowledged, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (acknowledged, exited):
                future.cancel()
            await asyncio.gather(acknowledged, exited, return_exceptions=True)


def _shutdown_window(sandbox: Sandbox) -> float:
    if sandbox.has_external_extensions:
        return EXTERNAL_SHUTDOWN_WINDOW
    if sandbox.has_internal_extensions:
        return INTERNAL_SHUTDOWN_WINDOW
    return 0.0
