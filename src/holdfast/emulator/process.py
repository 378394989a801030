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
import functools
import itertools
import os
import signal
import subprocess
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from .output import ProcessOutput

# /proc states of a process that cannot run: stopped, traced, zombie, dead.
_STOPPED_STATES = frozenset("TtZX")
# A process in uninterruptible sleep stops only when it wakes; do not wait on it forever.
_STOP_CONFIRMATION_LIMIT = 2.0
# For this long the checks of a freeze in progress only yield to the event loop in between;
# after it they are 1 ms apart (`_STOP_CONFIRMATION_POLL`).
_STOP_CONFIRMATION_SPIN = 0.0005
_STOP_CONFIRMATION_POLL = 0.001
# The most pids handed out since the last check that are asked for their group one by one;
# past it, the whole of /proc is searched (a few hundred processes on a typical machine).
_MAX_CREATED_PIDS = 512
# /proc/loadavg, open for the life of the process (re-read with pread: one system call).
_loadavg_fd: int | None = None
# Whether /proc/loadavg's last field moves when a pid is handed out (checked at every spawn; a
# /proc that only imitates Linux's may not keep it).
_cursor_is_live = True


class ProcessGroup:
    """Spawns processes into one group and signals them together."""

    def __init__(self) -> None:
        self.pgid: int | None = None
        self.processes: list[asyncio.subprocess.Process] = []
        self.frozen = False
        # The members /proc showed stopped when the last freeze was confirmed, and the kernel's
        # pid cursor read just before the check that found them (see `freeze`).
        self.members: list[int] = []
        self._members_cursor: bytes | None = None
        # The sum of their peak memory (VmHWM, kB) in the reads that confirmed the freeze: a
        # stopped process cannot grow, so it holds until the thaw.
        self._frozen_peak_kb = 0
        self._exits: dict[asyncio.subprocess.Process, asyncio.Future[int]] = {}
        # /proc/<pid>/status of each known member, kept open: a check is one pread per member,
        # which gives its state, its group and its peak memory at once. An open /proc file
        # stays bound to its process: once it is gone, a read fails (ESRCH) rather than
        # describing a new process that reused the pid.
        self._status_files = _ProcFiles("status")

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None,
        output: ProcessOutput | None = None,
    ) -> asyncio.subprocess.Process:
        """Start `argv` in the group (the first process founds it).

        With `output`, the process writes its stdout and stderr into those pipes; without, it
        shares the emulator's.
        """
        global _cursor_is_live
        before = _pid_cursor()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=None if output is None else output.stdout.write_fd,
                stderr=None if output is None else output.stderr.write_fd,
                process_group=0 if self.pgid is None else self.pgid,
            )
        finally:
            if output is not None:
                output.child_started()
        if before is None or _pid_cursor() == before:
            _cursor_is_live = False  # a pid was handed out and the cursor did not move
        if self.pgid is None:
            self.pgid = process.pid
        self.processes.append(process)
        self._exits[process] = asyncio.ensure_future(process.wait())
        return process

    def exit_of(self, process: asyncio.subprocess.Process) -> asyncio.Future[int]:
        """A future of `process`'s exit status (one per process, shared by every waiter)."""
        return self._exits[process]

    def signal(self, signum: int) -> None:
        """Send `signum` to every process of the group (if any is left)."""
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signum)

    async def freeze(self) -> None:
        """Stop every process of the group; return once the kernel shows all of them stopped.

        SIGSTOP cannot be caught or ignored, but it takes effect only when each process is next
        scheduled; until then its threads may still run. Waiting for the stop to show in /proc
        makes "frozen" mean no process of the group can make progress any more. A stop usually
        shows within microseconds, so the first checks follow each other closely (yielding to
        the event loop in between) before the wait backs off to millisecond sleeps.

        Which processes are in the group is known exactly once a freeze is confirmed: stopped
        processes fork nothing. A new member needs a new pid, so while the kernel's pid cursor
        (the last pid handed out, `/proc/loadavg`) has not moved since that check, no process
        or thread was created anywhere and the members are the ones found then, minus those
        that exited or left the group: only their states are read. When the cursor moved, the
        pids handed out since (pids are handed out in increasing order, wrapping at `pid_max`)
        are asked for their group — usually a few, handed out to processes elsewhere on the
        machine —, and the check repeats with the ones found until the cursor stands still.
        Any other time (too many pids handed out, or the cursor is not live on this system)
        every process in /proc is asked for its group, as it is for the first freeze.
        """
        if not self.frozen:
            self.stop()
        known, known_cursor = self.members, self._members_cursor
        self.members, self._members_cursor = [], None
        if self.pgid is None:
            return
        started = time.monotonic()
        stops: _ChildStops | None = None
        checks = 0
        try:
            while True:
                confirmed = False
                if known and _cursor_is_live:
                    # The known members first: while one still runs, the cursor need not be
                    # read. Read after them, an unmoved cursor also covers their reading.
                    members = _member_states(self._status_files, known, self.pgid)
                    cursor = known_cursor
                    if _all_stopped(members):
                        now = _pid_cursor()
                        confirmed = now == known_cursor
                        if not confirmed:  # something was created since: in the group?
                            added = _created_members(known_cursor, now, self.pgid)
                            if added is None:  # too many to look through: the whole group
                                known = []
                            else:  # checked next round, the cursor read again after them
                                known = [member.pid for member in members]
                                known += [pid for pid in added if pid not in known]
                                known_cursor = now
                if not known or not _cursor_is_live:
                    cursor = _pid_cursor() if _cursor_is_live else None
                    members = _group_members(self._status_files, self.pgid)
                    confirmed = _all_stopped(members)
                if confirmed:
                    self.members = [member.pid for member in members]
                    self._members_cursor = cursor
                    self._frozen_peak_kb = sum(member.peak_kb for member in members)
                    self._status_files.keep(self.members)
                    return
                waited = time.monotonic() - started
                if waited >= _STOP_CONFIRMATION_LIMIT:
                    return
                checks += 1
                if stops is None and checks > 1 and self._only_children_run(members):
                    # The kernel tells a parent the moment a child of it stops (SIGCHLD):
                    # wait for that rather than poll. Checked once more after the watch
                    # begins, for a stop that came just before it. Not at the first check:
                    # a stop still on its way usually shows after one round of the event
                    # loop, which costs less than setting the handler up and taking it down.
                    stops = _ChildStops.of(asyncio.get_running_loop())
                    if stops.watch():
                        continue
                if stops is not None and stops.watching:
                    # A poll still, for what sends no signal here (a grandchild's stop).
                    await stops.wait(_STOP_CONFIRMATION_POLL)
                elif waited < _STOP_CONFIRMATION_SPIN:
                    # No sched_yield: the SIGSTOP's wake-up usually runs the stop before
                    # killpg returns, and on a busy machine a yield hands the CPU to any
                    # other process for a whole time slice (~0.5 ms measured), not to the
                    # one stopping.
                    await asyncio.sleep(0)
                else:
                    await asyncio.sleep(_STOP_CONFIRMATION_POLL)
        finally:
            if stops is not None:
                stops.unwatch()

    def _only_children_run(self, members: list[_Member]) -> bool:
        """Whether every member not stopped yet is a process the emulator started itself."""
        running = [member.pid for member in members if member.state not in _STOPPED_STATES]
        children = {process.pid for process in self.processes}
        return bool(running) and all(pid in children for pid in running)

    def stop(self) -> None:
        """Send the group SIGSTOP; `freeze` then waits for the stop to show."""
        self.signal(signal.SIGSTOP)
        self.frozen = True

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
        await asyncio.gather(*self._exits.values(), return_exceptions=True)
        self.processes.clear()
        self._exits.clear()
        self.members, self._members_cursor = [], None
        self._status_files.keep([])
        self.pgid = None

    def peak_memory_mb(self) -> int:
        """Peak resident memory of the group: the sum of every member's VmHWM, in MB."""
        if self.pgid is None:
            return 0
        # While frozen, the group is exactly what the freeze's confirmation found, and its
        # peak is what those reads said.
        if self.frozen and self.members:
            total_kb = self._frozen_peak_kb
        else:
            total_kb = sum(
                _peak_rss_kb(_read_proc(pid, "status")) for pid in _group_pids(self.pgid)
            )
        return -(-total_kb // 1024)


class _ChildStops:
    """SIGCHLD as an event of the loop, while a freeze waits for children of the emulator.

    A process that stops is noticed at once by its parent's SIGCHLD; polling /proc would notice
    it at the next check, which on a busy machine (the stopping process must be scheduled to
    stop) comes only after a run of checks that each cost a loop round. The handler is the
    loop's (`add_signal_handler`, which also takes the process's signal wakeup fd while any
    loop handler is set), installed only while some freeze waits, and only where the signal is
    free: not from a thread other than the main one, and never over a SIGCHLD disposition of
    someone else's; there the freeze polls as before.
    """

    _instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ChildStops] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._watches = 0
        self._waiters: list[asyncio.Future[None]] = []
        self.watching = False

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _ChildStops:
        """The one instance of `loop` (a signal has one handler per loop)."""
        stops = cls._instances.get(loop)
        if stops is None:
            stops = cls._instances[loop] = cls(loop)
        return stops

    def watch(self) -> bool:
        """Begin a watch (balanced by `unwatch`); says whether SIGCHLD is now watched."""
        self._watches += 1
        if self._watches == 1 and not self.watching:
            self.watching = self._install()
        return self.watching

    def unwatch(self) -> None:
        """End a watch; the last one removes the handler."""
        self._watches -= 1
        if self._watches == 0 and self.watching:
            self.watching = False
            self._loop.remove_signal_handler(signal.SIGCHLD)

    async def wait(self, timeout: float) -> None:
        """Return at the next SIGCHLD, or after `timeout` seconds."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        timer = self._loop.call_later(timeout, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _install(self) -> bool:
        if signal.getsignal(signal.SIGCHLD) not in (signal.SIG_DFL, None):
            return False  # ignored, or handled by someone else (a child watcher, the app)
        try:
            self._loop.add_signal_handler(signal.SIGCHLD, self._signalled)
        except (ValueError, RuntimeError, NotImplementedError):
            return False  # not the main thread (or no signals here): poll
        return True

    def _signalled(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _resolve(waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _ProcFiles:
    """One /proc/<pid>/<name> file per process, opened once and re-read with `pread`."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._fds: dict[int, int] = {}

    def read(self, pid: int) -> bytes | None:
        """The file's content now, or None once the process is gone."""
        fd = self._fds.get(pid)
        if fd is None:
            try:
                fd = self._fds[pid] = os.open(f"/proc/{pid}/{self._name}", os.O_RDONLY)
            except OSError:
                return None
        try:
            return os.pread(fd, 1 << 16, 0)
        except OSError:
            del self._fds[pid]
            os.close(fd)
            return None

    def keep(self, pids: list[int]) -> None:
        """Close the files of every process but `pids`."""
        for pid in [pid for pid in self._fds if pid not in pids]:
            os.close(self._fds.pop(pid))

    def __del__(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


def describe_exit(returncode: int) -> str:
    """An exit status worded as Lambda words it (`exit status 1`, `signal: killed`)."""
    if returncode >= 0:
        return f"exit status {returncode}"
    name = signal.strsignal(-returncode) or f"signal {-returncode}"
    return f"signal: {name.lower()}"


def _group_pids(pgid: int) -> list[int]:
    """The pid of each process in the group."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            # One system call per process, rather than reading and parsing its /proc stat.
            if os.getpgid(pid) == pgid:
                pids.append(pid)
        except ProcessLookupError:
            continue
        except OSError:  # not allowed to ask: /proc still tells
            if _stat_group(pid) == pgid:
                pids.append(pid)
    return pids


def _created_members(before: bytes | None, now: bytes | None, pgid: int) -> list[int] | None:
    """The processes of the group among the pids handed out after `before`, up to `now` (the
    pid cursor's two readings); None when there are too many to ask one by one."""
    if before is None or now is None:
        return None
    first, last = int(before) + 1, int(now) + 1
    # After pid_max the cursor wraps around to the lowest free pid.
    wrapped = first > last
    ranges = [range(first, _pid_max()), range(1, last)] if wrapped else [range(first, last)]
    if sum(map(len, ranges)) > _MAX_CREATED_PIDS:
        return None
    found = []
    for pid in itertools.chain.from_iterable(ranges):
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:  # gone already
            continue
        except OSError:  # not allowed to ask: /proc still tells
            stat_group = _stat_group(pid)
            if stat_group is None:
                continue
            group = stat_group
        # A pid is also handed out to each new thread, and asking a thread answers for its
        # process: only a process (its thread group's leader) is a member.
        if group == pgid and _is_process(pid):
            found.append(pid)
    return found


def _is_process(pid: int) -> bool:
    status = _read_proc(pid, "status")
    tgid = None if status is None else _status_value(status, b"Tgid")
    return tgid is not None and int(tgid) == pid


@functools.cache
def _pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as file:
            return int(file.read())
    except (OSError, ValueError):
        return 1 << 22  # the most Linux allows


class _Member(NamedTuple):
    """A process of the group as one read of its /proc/<pid>/status showed it."""

    pid: int
    state: str  # as in /proc/<pid>/stat: "T" stopped, "R" running, ...
    peak_kb: int  # VmHWM


def _all_stopped(members: list[_Member]) -> bool:
    return all(member.state in _STOPPED_STATES for member in members)


def _group_members(files: _ProcFiles, pgid: int) -> list[_Member]:
    """Each process in the group, as its status file shows it now."""
    return _member_states(files, _group_pids(pgid), pgid)


def _member_states(files: _ProcFiles, pids: list[int], pgid: int) -> list[_Member]:
    """Those of `pids` that still exist and are still in the group, each read once."""
    members = []
    for pid in pids:
        status = files.read(pid)
        if status is None:  # gone (and reaped) since: not a member any more
            continue
        state, group = _status_state_and_group(status)
        if group is None:  # a /proc without NSpgid (before Linux 4.1): stat tells
            group = _stat_group(pid)
        if group == pgid:
            members.append(_Member(pid, state, _peak_rss_kb(status)))
    return members


def _status_state_and_group(status: bytes) -> tuple[str, int | None]:
    """The state letter and the process group (None if not shown) in a /proc status file."""
    state = _status_value(status, b"State")
    group = _status_value(status, b"NSpgid")
    # NSpgid has one value per pid namespace the process is in, the outermost (this /proc's)
    # first.
    return (
        chr(state[0]) if state else "?",
        None if group is None else int(group.split()[0]),
    )


def _status_value(status: bytes, key: bytes) -> bytes | None:
    """The value on the `key:` line of a /proc status file (blanks around it removed), or None
    when there is no such line."""
    start = status.find(b"\n" + key + b":")
    if start < 0:
        return None
    start += len(key) + 2
    return status[start : status.index(b"\n", start)].strip()


def _pid_cursor() -> bytes | None:
    """The last pid the kernel handed out in this pid namespace (or None if unreadable)."""
    global _loadavg_fd
    try:
        if _loadavg_fd is None:
            _loadavg_fd = os.open("/proc/loadavg", os.O_RDONLY)
        fields = os.pread(_loadavg_fd, 256, 0).split()
    except OSError:
        return None
    return fields[4] if len(fields) == 5 and fields[4].isdigit() else None


def _read_proc(pid: int, name: str) -> bytes | None:
    """/proc/<pid>/<name>, or None if the process is gone."""
    try:
        fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat_group(pid: int) -> int | None:
    """The process group /proc/<pid>/stat shows (None once the process is gone)."""
    stat = _read_proc(pid, "stat")
    if stat is None:
        return None
    # The fields after the parenthesised command name: state, ppid, pgrp, ...
    fields = stat.rpartition(b")")[2].split(None, 4)
    return int(fields[2]) if len(fields) > 2 else None


def _peak_rss_kb(status: bytes | None) -> int:
    peak = None if status is None else _status_value(status, b"VmHWM")
    return 0 if peak is None else int(peak.split()[0])
