"""The execution environment's one event loop, and how a synchronous caller drives it.

Lambda calls a Python handler synchronously, so between invocations nothing may run the loop
(the environment is frozen anyway). Instead of a new loop per call or a thread hop per call,
the caller's thread steps the persistent loop until what it waits for is done. Stepping is
``BaseEventLoop._run_once``: ``run_until_complete`` costs twice as much per invocation, which is
most of a raw ASGI app's whole budget; and the first pass runs what is ready without the poll for
I/O, so an app that never awaits a real future costs no poll at all. The loop is always one
holdfast created, so the method is there; the lock keeps two threads (a handler and the
after-response extension) from stepping at once. The loop is made on first use: an adapter nobody
calls owns no loop (no sockets, nothing to close).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from holdfast import adoption

T = TypeVar("T")

__all__ = ["Engine", "running_loop"]

#: The loop running in this thread, if any (asyncio's own fast check; ``get_running_loop``
#: raises instead of answering ``None``).
running_loop = asyncio._get_running_loop
_set_running_loop = asyncio._set_running_loop


class Engine:
    """Owns the persistent event loop; :meth:`run_until` drives it from the calling thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        # Background stepping (run_in_background) gives way to callers waiting in run_until.
        self._turn = threading.Condition(self._lock)
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._stepping_in_background = 0  # threads in run_in_background (rarely any)
        self._hooks: tuple[Any, Any] = (None, None)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The persistent loop, made on first use."""
        loop = self._loop
        if loop is None:
            with self._lock:
                if self._loop is None:
                    # A plain selector loop, never the policy's: driving relies on its _run_once.
                    self._loop = asyncio.SelectorEventLoop()
                    # The async-generator hooks run_forever installs, bound once, not per step.
                    self._hooks = (
                        self._loop._asyncgen_firstiter_hook,  # type: ignore[attr-defined]
                        self._loop._asyncgen_finalizer_hook,  # type: ignore[attr-defined]
                    )
                    adoption.install(self._loop)  # tasks a request starts join its work
                loop = self._loop
        return loop

    @property
    def started(self) -> bool:
        """Whether the loop exists (and is not closed)."""
        return self._loop is not None and not self._loop.is_closed()

    def run_until(self, done: Callable[[], bool]) -> None:
        """Step the loop in this thread until ``done()`` is true."""
        if done():
            return
        loop = self.loop
        lock = self._lock
        if not lock.acquire(blocking=False):  # another thread steps: wait for our turn
            with self._waiting_lock:
                self._waiting += 1
            loop.call_soon_threadsafe(_nothing)  # wake a background stepper so it gives way
            lock.acquire()
            with self._waiting_lock:
                self._waiting -= 1
        try:
            hooks = self._enter(loop)
            try:
                # What is ready first, without a poll: an app that never awaits a real future
                # (a plain endpoint) is done after this pass and the loop is never polled.
                _run_ready(loop)
                run_once = loop._run_once  # type: ignore[attr-defined]
                while not done():
                    run_once()
            finally:
                self._leave(hooks)
                if self._stepping_in_background:
                    self._turn.notify_all()
        finally:
            lock.release()

    def run_in_background(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion from a background thread, stepping the loop only while no
        other thread waits in :meth:`run_until`.

        For a host that drains after-response work while the next invocation may already be
        handled (Lambda Managed Instances: no freeze between invocations): the handler never
        waits for the drain, and whoever steps the loop advances both.
        """
        loop = self.loop
        with self._lock:
            task = loop.create_task(coro)
            self._stepping_in_background += 1
        try:
            self._step_in_background(loop, task)
        finally:
            with self._lock:
                self._stepping_in_background -= 1
        return task.result()

    def _step_in_background(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        while not task.done():
            with self._lock:
                while self._waiting:
                    self._turn.wait()
                hooks = self._enter(loop)
                try:
                    run_once = loop._run_once  # type: ignore[attr-defined]
                    while not task.done() and not self._waiting:
                        run_once()
                finally:
                    self._leave(hooks)

    def step(self) -> None:
        """Run what is ready to run now: one pass of the loop that never waits for I/O or timers."""
        loop = self.loop
        if not loop._ready:  # type: ignore[attr-defined]
            return  # a pass would block until the next timer
        with self._lock:
            # Checked again under the lock: another thread may have run them meanwhile, and a
            # pass with nothing ready would wait in select() for I/O that may never come.
            if not loop._ready:  # type: ignore[attr-defined]
                return
            hooks = self._enter(loop)
            try:
                loop._run_once()  # type: ignore[attr-defined]
            finally:
                self._leave(hooks)

    def _enter(self, loop: asyncio.AbstractEventLoop) -> Any:
        """This thread drives ``loop``: set up as ``run_forever`` would (minus the loop)."""
        if running_loop() is not None:
            raise RuntimeError(
                "holdfast.Adapter was called synchronously from inside a running event loop;"
                " call it in a thread instead: await asyncio.to_thread(handler, event, context)"
            )
        hooks = sys.get_asyncgen_hooks()
        sys.set_asyncgen_hooks(*self._hooks)
        _set_running_loop(loop)
        return hooks

    @staticmethod
    def _leave(hooks: Any) -> None:
        _set_running_loop(None)
        sys.set_asyncgen_hooks(*hooks)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on the persistent loop and return its result."""
        task = self.loop.create_task(coro)
        self.run_until(task.done)
        return task.result()

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()


def _nothing() -> None:
    pass


def _run_ready(loop: asyncio.AbstractEventLoop) -> None:
    """Run the callbacks ready now, as the second half of ``_run_once`` does, without its poll
    for I/O and timers (a ``select`` call, most of a pass's cost). Only ever one such pass
    before the real ones: a callback that keeps rescheduling itself cannot keep I/O waiting."""
    if loop.get_debug():
        return  # the real pass times each callback for asyncio's slow-callback warnings
    ready = loop._ready  # type: ignore[attr-defined]
    for _ in range(len(ready)):
        handle = ready.popleft()
        if not handle._cancelled:
            handle._run()
