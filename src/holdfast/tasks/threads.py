"""A thread pool for sync task functions, lighter than `loop.run_in_executor`.

Finished calls are handed back in batches: the first completion wakes the event loop and any
that finish before the loop gets there ride along, so a busy worker pays one wake-up for many
tasks instead of one each. No concurrent.futures.Future sits between the thread and the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = None


class ThreadRunner:
    """Runs callables on threads, for one event loop, until `shutdown()`.

    A call takes an idle thread when there is one, else starts a new one: the caller bounds
    how many calls run at once. There is no upper limit of its own on purpose: a sync task
    that timed out keeps its thread, and must not hold up the calls that come after it.
    """

    def __init__(self, *, name: str = "holdfast-task") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._done: list[tuple[Callable[..., None], Any, BaseException | None]] = []
        self._lock = threading.Lock()
        self._wake_scheduled = False

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Call `fn(*args, **kwargs)` on a thread; the future resolves on the caller's loop."""
        future = asyncio.get_running_loop().create_future()
        self.submit(fn, args, kwargs, functools.partial(_resolve, future))
        return future

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        done: Callable[[Any, BaseException | None], None],
    ) -> None:
        """Call `fn` on a thread, in a copy of the caller's context; then, on the caller's
        event loop, `done(result, None)` or `done(None, exception)`.
        """
        loop = asyncio.get_running_loop()
        self._jobs.put((loop, done, contextvars.copy_context(), fn, args, kwargs))
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle = max(self._idle - 1, 0)  # an idle thread will take this call
        if spawn:
            thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def shutdown(self) -> None:
        """Let the threads exit once the queued calls are done (does not wait for them)."""
        for _ in self._threads:
            self._jobs.put(_STOP)
        self._threads = []

    def _work(self) -> None:
        while (job := self._jobs.get()) is not _STOP:
            loop, done, context, fn, args, kwargs = job
            try:
                result, error = context.run(fn, *args, **kwargs), None
            except BaseException as exc:
                result, error = None, exc
            self._finish(loop, done, result, error)

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        done: Callable[[Any, BaseException | None], None],
        result: Any,
        error: BaseException | None,
    ) -> None:
        with self._lock:
            self._done.append((done, result, error))
            self._idle += 1
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        try:
            loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _deliver(self) -> None:
        with self._lock:
            finished, self._done = self._done, []
            self._wake_scheduled = False
        for done, result, error in finished:
            done(result, error)


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # timed out or force-stopped; the result is dropped
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
