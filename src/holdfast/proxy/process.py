"""The app's server process: started, watched, stopped.

A child inherits its parent's signal mask across ``fork`` and ``exec``, and a server that
cannot receive SIGTERM cannot shut down gracefully. The runtime blocks nothing (see
:mod:`holdfast.runtime.sigterm`), but the server is started with ``posix_spawn`` and an empty
signal mask all the same, so no mask inherited from whoever started the runtime can keep
SIGTERM from it; it is watched through a pidfd on the event loop (no watcher thread).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping, Sequence

#: Seconds between exit checks where pidfds are not available (not Linux).
_POLL_INTERVAL = 0.1


class AppProcess:
    """One running command; :attr:`exited` resolves to its exit status."""

    def __init__(self, pid: int, exited: asyncio.Future[int]) -> None:
        self.pid = pid
        self.exited = exited

    @classmethod
    async def start(cls, command: Sequence[str], env: Mapping[str, str]) -> AppProcess:
        """Start ``command`` (looked up on ``PATH``) with nothing in its signal mask."""
        try:
            pid = os.posix_spawnp(command[0], list(command), dict(env), setsigmask=())
        except OSError as exc:
            raise RuntimeError(f"cannot start {command[0]!r}: {exc}") from exc
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[int] = loop.create_future()
        _watch(loop, pid, exited)
        return cls(pid, exited)

    @property
    def returncode(self) -> int | None:
        return self.exited.result() if self.exited.done() else None

    async def stop(self, timeout: float) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self.exited.done():
            return
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), timeout)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await self.exited

    def _signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass


def _watch(loop: asyncio.AbstractEventLoop, pid: int, exited: asyncio.Future[int]) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        loop.create_task(_poll(pid, exited))
        return

    def readable() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        _reap(pid, exited, block=True)

    loop.add_reader(pidfd, readable)


async def _poll(pid: int, exited: asyncio.Future[int]) -> None:
    while not _reap(pid, exited, block=False):
        await asyncio.sleep(_POLL_INTERVAL)


def _reap(pid: int, exited: asyncio.Future[int], *, block: bool) -> bool:
    try:
        reaped, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:  # reaped elsewhere: the status is lost
        reaped, status = pid, 255 << 8
    if reaped == 0:
        return False
    if not exited.done():
        exited.set_result(os.waitstatus_to_exitcode(status))
    return True
