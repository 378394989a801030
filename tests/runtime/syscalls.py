"""Which system call a thread is blocked in (Linux ``/proc``): how the tests tell a runtime
waiting in its socket's ``poll`` from one waiting in the event loop's ``epoll``/``select``."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable

DEADLINE = 20.0


def current(pid: int, tid: int | None = None) -> str:
    """The number of the system call thread ``tid`` of process ``pid`` is in ("running" or
    "-1" when in none). ``tid`` defaults to the main thread."""
    path = f"/proc/{pid}/task/{tid or pid}/syscall"
    with open(path) as file:
        return file.read().split()[0]


def of(wait: Callable[[socket.socket], object]) -> str:
    """The number of the system call a thread blocked in ``wait(sock)`` sits in (the number
    differs between architectures, so it is looked up here rather than written down)."""
    quiet, waker = socket.socketpair()
    tid: list[int] = []

    def blocked() -> None:
        tid.append(threading.get_native_id())
        wait(quiet)

    thread = threading.Thread(target=blocked, daemon=True)
    thread.start()
    try:
        while not tid:
            time.sleep(0.001)
        pid = os.getpid()
        return until(lambda: current(pid, tid[0]), lambda number: number not in _NOT_BLOCKED)
    finally:
        waker.send(b"x")
        thread.join(DEADLINE)
        quiet.close()
        waker.close()


def poll_number() -> str:
    """The number of ``poll``, as ``select.poll().poll()`` calls it."""

    def wait(sock: socket.socket) -> None:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poller.poll()

    return of(wait)


def until(read: Callable[[], str], done: Callable[[str], bool]) -> str:
    """Read until ``done`` accepts the value, within :data:`DEADLINE`; the last value."""
    deadline = time.monotonic() + DEADLINE
    value = read()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {DEADLINE} s")
        time.sleep(0.001)
        value = read()
    return value


# What /proc shows for a thread in no system call.
_NOT_BLOCKED = frozenset({"running", "-1"})
