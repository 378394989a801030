"""The processes of one execution environment, handled as one process group.

Everything an environment runs (external extensions, the runtime, whatever they fork) shares one
process group, so one signal freezes, thaws or kills all of it, as the Lambda sandbox does.

The group is a new group in the emulator's own session (`process_group=0`) rather than a new
session: extensions and the runtime can then all join it (a process cannot join a group of
another session), and if the emulator dies without cleaning up, POSIX sends SIGHUP + SIGCONT to
the stopped, now-orphaned group, so a frozen runtime does not linger forever. Stdin is /dev/null,
so a background group never stops on a terminal read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# /proc states of a process that cannot run: stopped, traced, zombie, dead.
_STOPPED_STATES = frozenset("TtZX")
# A process in uninterruptible sleep stops only when it wakes; do not wait on it forever.
_STOP_CONFIRMATION_LIMIT = 2.0


class ProcessGroup:
    """Spawns processes into one group and signals them together."""

    def __init__(self) -> None:
        self.pgid: int | None = None
        self.processes: list[asyncio.subprocess.Process] = []
        self.frozen = False

    async def spawn(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None
    ) -> asyncio.subprocess.Process:
        """Start `argv` in the group (the first process founds it)."""
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            process_group=0 if self.pgid is None else self.pgid,
        )
        if self.pgid is None:
            self.pgid = process.pid
        self.processes.append(process)
        return process

    def signal(self, signum: int) -> None:
        """Send `signum` to every process of the group (if any is left)."""
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signum)

    async def freeze(self) -> None:
        """Stop every process of the group; return once the kernel shows all of them stopped.

        SIGSTOP cannot be caught or ignored, but it takes effect only when each process is next
        scheduled; until then its threads may still run. Waiting for the stop to show in /proc
        makes "frozen" mean no process of the group can make progress any more.
        """
        self.signal(signal.SIGSTOP)
        self.frozen = True
        if self.pgid is None:
            return
        deadline = time.monotonic() + _STOP_CONFIRMATION_LIMIT
        while time.monotonic() < deadline:
            if all(state in _STOPPED_STATES for _, state in _group_members(self.pgid)):
                return
            await asyncio.sleep(0.001)

    def thaw(self) -> None:
        """Resume the group after a freeze."""
        if self.frozen:
            self.signal(signal.SIGCONT)
            self.frozen = False

    async def kill(self) -> None:
        """SIGKILL the whole group and reap the processes the emulator started."""
        self.thaw()
        self.signal(signal.SIGKILL)
        await asyncio.gather(*(p.wait() for p in self.processes))
        self.processes.clear()
        self.pgid = None

    def peak_memory_mb(self) -> int:
        """Peak resident memory of the group: the sum of every member's VmHWM, in MB."""
        if self.pgid is None:
            return 0
        total_kb = sum(_peak_rss_kb(pid) for pid, _ in _group_members(self.pgid))
        return -(-total_kb // 1024)


def describe_exit(returncode: int) -> str:
    """An exit status worded as Lambda words it (`exit status 1`, `signal: killed`)."""
    if returncode >= 0:
        return f"exit status {returncode}"
    name = signal.strsignal(-returncode) or f"signal {-returncode}"
    return f"signal: {name.lower()}"


def _group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, state) of each process in the group; state as in /proc/<pid>/stat."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, pgrp, ...
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 2 and int(fields[2]) == pgid:
            members.append((int(entry.name), fields[0]))
    return members


def _peak_rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
