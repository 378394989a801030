"""Work an invocation still owes after its response, drained before the environment may freeze.

Each invocation owns a :class:`PendingWork` set, reachable through a context variable from any
code handling the request. Three kinds of work land in it: the rest of the app's own coroutine
after the last body chunk (FastAPI/Starlette ``BackgroundTasks`` run there), functions passed to
:func:`after_response`, and :func:`on_response_sent` callbacks. None of it starts before the
response has gone out, and the host does not report the invocation done until it has drained.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NamedTuple

from holdfast.appcode import is_app_file

logger = logging.getLogger("holdfast")

__all__ = [
    "CURRENT",
    "DEFAULT_DRAIN_MARGIN",
    "DrainReport",
    "PendingWork",
    "WorkHandle",
    "after_response",
    "bind",
    "current",
    "drain_budget",
    "name_cut_threads",
    "on_response_sent",
    "spill_with",
    "unbind",
    "write_ahead_with",
]

_current: contextvars.ContextVar[PendingWork | None] = contextvars.ContextVar(
    "holdfast_pending_work", default=None
)
#: The context variable holding the invocation's pending work (for :mod:`holdfast.adoption`).
CURRENT = _current


class DrainReport:
    """What became of an invocation's pending work.

    ``overrun``: work in threads still running at the deadline (a thread cannot be cancelled,
    so it runs on past its invocation; named in the log).
    """

    # A plain class, not a dataclass: a dataclass costs a quarter of a millisecond at init.
    __slots__ = ("cancelled", "drained", "failed", "overrun", "spilled")

    def __init__(
        self,
        drained: int = 0,
        failed: int = 0,
        spilled: int = 0,
        cancelled: list[str] | None = None,
        overrun: list[str] | None = None,
    ) -> None:
        self.drained = drained
        self.failed = failed
        self.spilled = spilled
        self.cancelled: list[str] = [] if cancelled is None else cancelled
        self.overrun: list[str] = [] if overrun is None else overrun

    def _fields(self) -> tuple[int, int, int, list[str], list[str]]:
        return (self.drained, self.failed, self.spilled, self.cancelled, self.overrun)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DrainReport):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"DrainReport(drained={self.drained}, failed={self.failed}, spilled={self.spilled},"
            f" cancelled={self.cancelled!r}, overrun={self.overrun!r})"
        )


class WorkHandle:
    """A unit of after-response work: its description and, once started, its future.

    ``spill`` (for holdfast tasks) re-enqueues the work on the durable task queue when the
    deadline cuts it off; ``spilled_as`` then holds the queued task's handle.
    """

    __slots__ = (
        "_start",
        "description",
        "detached",
        "failure",
        "future",
        "in_thread",
        "spill",
        "spilled_as",
        "task_id",
    )

    def __init__(
        self,
        description: str,
        start: Callable[[], asyncio.Future[Any]] | None,
        spill: Callable[[], Awaitable[Any]] | None = None,
        failure: str | None = None,
    ) -> None:
        self.description = description
        #: What the log says when the work raises (default: "after-response work ... failed").
        self.failure = failure
        self._start = start
        self.future: asyncio.Future[Any] | None = None
        self.spill = spill
        self.spilled_as: Any = None
        #: Runs in a thread (cannot be cancelled: past the deadline it is an overrun).
        self.in_thread = False
        #: Taken out of the invocation's work (:func:`holdfast.detach`): neither waited for
        #: nor cancelled.
        self.detached = False
        #: Durable work (``after_response(..., durable=True)``): the id of the task written
        #: ahead to the task queue, whose status the queue reports.
        self.task_id: str | None = None

    @property
    def started(self) -> bool:
        return self.future is not None

    def done(self) -> bool:
        return self.future is not None and self.future.done()

    def start(self) -> None:
        if self._start is not None and self.future is None:
            self.future = self._start()

    def __repr__(self) -> str:
        state = "done" if self.done() else "running" if self.started else "waiting for response"
        return f"<WorkHandle {self.description} {state}>"


class PendingWork:
    """The after-response work of one invocation.

    ``adopts``: whether asyncio tasks the app's code creates while the invocation is handled
    join it (:mod:`holdfast.adoption`). ``margin``: what the drain's timeout keeps free before
    the invocation's real deadline (:func:`drain_budget`); work in a thread, which cannot be
    cancelled, is waited for into it, until just before that deadline.
    """

    def __init__(
        self,
        request_id: str,
        loop: asyncio.AbstractEventLoop,
        *,
        adopts: bool = True,
        margin: float | None = None,
    ) -> None:
        self.request_id = request_id
        self.adopts = adopts
        margin = DEFAULT_DRAIN_MARGIN if margin is None else margin
        self.overrun_grace = max(0.0, margin - _NEXT_SLACK)
        self._loop = loop
        self._handles: list[WorkHandle] = []
        self._final: list[Callable[[], Any]] = []
        self._response_sent = False
        #: The invocation's Lambda context, whose deadline durable work is leased past
        #: (:meth:`defer_durable`); ``None``: no deadline.
        self.context: Any = None
        # Adopted tasks still running, each with its description; ended ones drop out.
        self._adopted: dict[asyncio.Task[Any], Callable[[], str]] = {}
        # The threads alive before the invocation began: any other one alive at its end was
        # started meanwhile (a thread is never adopted, but it is named).
        self._threads_before = frozenset(threading._active)  # type: ignore[attr-defined]

    # -- collecting work -------------------------------------------------------------------
    def track(
        self, future: asyncio.Future[Any], description: str, *, failure: str | None = None
    ) -> WorkHandle:
        """Track work that is already running, such as the app's coroutine after its response;
        ``failure`` is what the log says if it raises."""
        handle = WorkHandle(description, None, failure=failure)
        handle.future = future
        self._handles.append(handle)
        return handle

    def adopt(self, task: asyncio.Task[Any], describe: Callable[[], str]) -> None:
        """Make a running task part of this work (see :mod:`holdfast.adoption`): if it still
        runs when the response has gone out, the drain waits for it. ``describe()`` says what
        it is (asked only then)."""
        if task.done() or task in self._adopted:
            return
        self._adopted[task] = describe
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._adopted.pop(task, None)

    def detach(self, task: asyncio.Task[Any]) -> None:
        """Take ``task`` out of this work: it runs on, neither waited for nor cancelled."""
        self._adopted.pop(task, None)
        for handle in self._handles:
            if handle.future is task:
                handle.detached = True

    def _take_adopted(self) -> None:
        """Adopted tasks still running become tracked work (the drain waits for them)."""
        adopted, self._adopted = self._adopted, {}
        for task, describe in adopted.items():
            task.remove_done_callback(self._forget)
            if not task.done():
                self.track(task, describe())

    def defer(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> WorkHandle:
        """Run ``fn(*args, **kwargs)`` once the response has been sent."""
        start = functools.partial(self._start, fn, args, kwargs, contextvars.copy_context())
        handle = WorkHandle(_describe(fn), start, _spill_for(fn, args, kwargs))
        handle.in_thread = not _is_coroutine_function(fn)
        self._handles.append(handle)
        if self._response_sent:
            handle.start()
        return handle

    def defer_durable(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> WorkHandle:
        """Write ``fn(*args, **kwargs)`` ahead to the task queue now (before the response),
        leased past the invocation's deadline; run it here once the response has been sent.

        Raises ``TypeError`` for work no registered writer knows (a plain function: nothing
        could redeliver it), and whatever the queue raised when the write-ahead failed.
        """
        lease = self._durable_lease()
        written = None
        for writer in _writers:
            written = writer(fn, args, kwargs, lease)
            if written is not None:
                break
        if written is None:
            raise TypeError(
                f"after_response(..., durable=True) needs a holdfast task (a function decorated "
                f"with @queue.task, or task.options(...)), not {_describe(fn)}: a plain function "
                "cannot be redelivered if the environment dies"
            )
        description = f"{_describe(fn)} (durable task {written.id})"
        handle = WorkHandle(description, None, written.release)
        handle.task_id = written.id
        if written.run is None:  # a pending task holds its idempotency key: it runs there
            handle.future = self._loop.create_future()
            handle.future.set_result(None)
            return handle
        run = written.run
        handle._start = lambda: self._loop.create_task(run())
        handle.in_thread = written.in_thread
        self._handles.append(handle)
        if self._response_sent:
            handle.start()
        return handle

    def _durable_lease(self) -> float:
        remaining = getattr(self.context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return DURABLE_LEASE_UNBOUNDED
        return max(0.0, float(remaining()) / 1000) + DURABLE_LEASE_SLACK

    def _start(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: contextvars.Context,
    ) -> asyncio.Future[Any]:
        if _is_coroutine_function(fn):
            return self._loop.create_task(fn(*args, **kwargs), context=context)
        call = functools.partial(context.run, fn, *args, **kwargs)
        where = f"request {self.request_id}: {_describe(fn)}"
        return self._loop.run_in_executor(None, _in_thread, call, where)

    def finally_(self, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` once all other work has drained: the place for telemetry flushes, which
        must see the spans that middleware closes only when the app's coroutine returns."""
        if fn not in self._final:
            self._final.append(fn)

    def response_sent(self) -> None:
        """The response has gone out: start the work that was waiting for it."""
        self._response_sent = True
        for handle in self._handles:
            handle.start()

    # -- draining ---------------------------------------------------------------------------
    def __bool__(self) -> bool:
        if not (self._final or self._handles or self._adopted):
            return False  # most invocations: nothing was ever added
        return (
            bool(self._final)
            or any(not handle.done() for handle in self._handles)
            or any(not task.done() for task in self._adopted)
        )

    async def drain(self, timeout: float | None) -> DrainReport:
        """Wait for every unit of work, at most ``timeout`` seconds; cancel the async work left
        over. Work in a thread cannot be cancelled: it is waited for until just before the real
        deadline (the margin later), then reported as an *overrun* and left running.

        Work may add more work while it runs (``after_response`` inside after-response work):
        that is waited for too. The final callbacks (:meth:`finally_`) run last.
        """
        loop = self._loop
        deadline = None if timeout is None else loop.time() + timeout
        if not self._response_sent:
            self.response_sent()
        try:
            return await self._drain(deadline)
        except asyncio.CancelledError:
            self._name_cut()
            raise

    async def _settle_batch(
        self, batch: list[WorkHandle], deadline: float | None, report: DrainReport
    ) -> None:
        # Async work is cancelled at the deadline; threads get until the real deadline.
        for handle in batch:
            if not handle.in_thread:
                await self._settle(handle, report)
        await self._wait_for_threads(batch, deadline)
        for handle in batch:
            if handle.in_thread:
                await self._settle(handle, report)

    def _name_cut(self) -> None:
        """The drain itself was cancelled (a shutdown): cancel the async work it was waiting
        for and name it. (Work in threads runs on: :func:`name_cut_threads` names it.)"""
        self._take_adopted()
        for handle in self._handles:
            future = handle.future
            if handle.detached or handle.in_thread or future is None or future.done():
                continue
            future.cancel()
            logger.error(
                "request %s: after-response work %s was cut short by the shutdown",
                self.request_id,
                handle.description,
            )

    async def _drain(self, deadline: float | None) -> DrainReport:
        loop = self._loop
        report = DrainReport()
        settled = 0
        while True:
            self._take_adopted()
            if settled >= len(self._handles):
                break
            batch = self._handles[settled:]
            futures = [h.future for h in batch if h.future is not None and not h.detached]
            if futures:
                await asyncio.wait(futures, timeout=_remaining(loop, deadline))
            await self._settle_batch(batch, deadline, report)
            settled += len(batch)
            if deadline is not None and loop.time() >= deadline:
                break
        self._take_adopted()
        # Work added during the last batch, past the deadline: cut, but threads still get
        # their grace, as everywhere else.
        await self._settle_batch(self._handles[settled:], deadline, report)
        self._handles.clear()
        await self._run_final(report, deadline)
        self.name_threads_left()
        return report

    def name_threads_left(self) -> list[str]:
        """Log the threads the app's code started during the invocation that still run as it
        ends: holdfast does not wait for them, so they freeze mid-work. Returns their names."""
        threads = threading._active  # type: ignore[attr-defined]
        if threads.keys() <= self._threads_before:
            return []
        named = []
        for ident, thread in list(threads.items()):
            where = None if ident in self._threads_before else _thread_origin(thread)
            if where is not None:
                named.append(thread.name)
                logger.warning(
                    "request %s: thread %r (%s) started during the request is still running as "
                    "the invocation ends: threads are not waited for and freeze with the "
                    "environment; pass the work to holdfast.after_response(), or await it with "
                    "loop.run_in_executor()",
                    self.request_id,
                    thread.name,
                    where,
                )
        return named

    async def _wait_for_threads(self, batch: list[WorkHandle], deadline: float | None) -> None:
        """Work in threads cannot be cancelled: past the drain's deadline it is still waited
        for, until the invocation's real deadline (``overrun_grace`` later), so the environment
        is not reported idle while it runs."""
        if deadline is None or self.overrun_grace <= 0:
            return
        running = [
            h.future
            for h in batch
            if h.in_thread and h.future is not None and not h.future.done() and not h.detached
        ]
        if running:
            await asyncio.wait(
                running, timeout=_remaining(self._loop, deadline + self.overrun_grace)
            )

    async def _run_final(self, report: DrainReport, deadline: float | None) -> None:
        final, self._final = self._final, []
        for fn in final:
            handle = WorkHandle(
                _describe(fn),
                functools.partial(self._start, fn, (), {}, contextvars.copy_context()),
            )
            handle.in_thread = not _is_coroutine_function(fn)
            handle.start()
            assert handle.future is not None
            await asyncio.wait([handle.future], timeout=_remaining(self._loop, deadline))
            await self._settle(handle, report)

    async def _settle(self, handle: WorkHandle, report: DrainReport) -> None:
        future = handle.future
        if handle.detached:
            return
        if handle.in_thread and future is not None and not future.done():
            report.overrun.append(handle.description)
            logger.error(
                "request %s: after-response work %s is still running in its thread at the "
                "invocation's deadline (a thread cannot be stopped): it overruns, and goes on "
                "when the environment is next thawed",
                self.request_id,
                handle.description,
            )
            return
        if future is None or not future.done():
            if future is not None:
                future.cancel()
            if handle.spill is not None and await self._spill(handle):
                report.spilled += 1
                return
            report.cancelled.append(handle.description)
            logger.error(
                "request %s: after-response work %s did not finish before the deadline "
                "and was cancelled%s",
                self.request_id,
                handle.description,
                _DETACH_HINT if handle.description.startswith("task ") else "",
            )
        elif future.cancelled():
            report.cancelled.append(handle.description)
        elif future.exception() is not None:
            report.failed += 1
            failure = handle.failure or f"after-response work {handle.description} failed"
            logger.error("request %s: %s", self.request_id, failure, exc_info=future.exception())
        else:
            report.drained += 1

    async def _spill(self, handle: WorkHandle) -> bool:
        # The drain margin before the deadline exists for this: a durable enqueue is quick.
        assert handle.spill is not None
        try:
            handle.spilled_as = await handle.spill()
        except Exception:
            logger.exception(
                "request %s: could not spill %s to the task queue",
                self.request_id,
                handle.description,
            )
            return False
        logger.warning(
            "request %s: after-response work %s did not finish before the deadline; "
            "spilled to the task queue as %s",
            self.request_id,
            handle.description,
            getattr(handle.spilled_as, "id", handle.spilled_as),
        )
        return True


_DETACH_HINT = (
    " (a task the app started during the request is waited for as its work; one that should"
    " outlive the request: holdfast.detach(task))"
)


# Work running in threads now, by a key of its own: what a shutdown must name when it ends the
# process under it (a thread cannot be cancelled).
_threads_running: dict[object, str] = {}


def _in_thread(call: Callable[[], Any], where: str) -> Any:
    key = object()
    _threads_running[key] = where
    try:
        return call()
    finally:
        del _threads_running[key]


def _thread_origin(thread: threading.Thread) -> str | None:
    """Where the app's own code a thread runs is (its target, or the ``run`` of a Thread
    subclass of the app's), as ``file:line in function``; ``None`` for a library's thread."""
    target = getattr(thread, "_target", None)
    if target is None and type(thread).run is not threading.Thread.run:
        target = type(thread).run
    code = getattr(inspect.unwrap(target), "__code__", None) if target is not None else None
    if code is None or not is_app_file(code.co_filename):
        return None
    return f"{os.path.relpath(code.co_filename)}:{code.co_firstlineno} in {code.co_name}"


def name_cut_threads(why: str) -> bool:
    """Log the after-response work still running in threads as cut short by ``why`` (the
    process is about to end under it); whether there was any."""
    running = list(_threads_running.values())
    for where in running:
        logger.error("%s: after-response work still running in its thread is cut: %s", why, where)
    return bool(running)


def _is_coroutine_function(fn: Callable[..., Any]) -> bool:
    # Wrappers (holdfast tasks, functools.wraps decorators) and objects with an async __call__
    # return coroutines too: they belong on the loop, not in a thread.
    return (
        inspect.iscoroutinefunction(fn)
        or inspect.iscoroutinefunction(inspect.unwrap(fn))
        or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004
    )


#: How deferred work can be re-enqueued durably (``holdfast.tasks`` registers its own).
Spiller = Callable[
    [Callable[..., Any], tuple[Any, ...], dict[str, Any]], Callable[[], Awaitable[Any]] | None
]
_spillers: list[Spiller] = []


def spill_with(spiller: Spiller) -> None:
    """Register ``spiller(fn, args, kwargs)``: for work it knows how to re-enqueue durably (a
    holdfast task) it returns the coroutine function that does so, else ``None``. The drain calls
    it for work the deadline cuts off (the registration hook through which ``holdfast.tasks``
    plugs in: the core never imports it). Registering the same spiller again is a no-op."""
    if spiller not in _spillers:
        _spillers.append(spiller)


def _spill_for(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[[], Awaitable[Any]] | None:
    """How to re-enqueue ``fn(*args, **kwargs)`` durably, if a registered spiller knows."""
    for spiller in _spillers:
        spill = spiller(fn, args, kwargs)
        if spill is not None:
            return spill
    return None


class WrittenAhead(NamedTuple):
    """What a write-ahead hook answers for durable work it has stored.

    ``run()`` runs the work here and marks the task done (``None``: another run of the same
    task is pending already, by its idempotency key, and it must not run here too);
    ``release()`` hands it over to the queue at once, when the deadline cuts it off;
    ``in_thread``: the work runs in a thread (it overruns rather than being cancelled).
    """

    id: str
    run: Callable[[], Coroutine[Any, Any, Any]] | None
    release: Callable[[], Awaitable[Any]]
    in_thread: bool = False


#: How durable work is written ahead (``holdfast.tasks`` registers its own): for work it
#: knows, ``writer(fn, args, kwargs, lease)`` stores it, leased for ``lease`` seconds.
WriteAhead = Callable[
    [Callable[..., Any], tuple[Any, ...], dict[str, Any], float], WrittenAhead | None
]
_writers: list[WriteAhead] = []


def write_ahead_with(writer: WriteAhead) -> None:
    """Register ``writer``: the write-ahead of ``after_response(..., durable=True)`` (the
    registration hook through which ``holdfast.tasks`` plugs in, as :func:`spill_with`).
    Registering the same writer again is a no-op."""
    if writer not in _writers:
        _writers.append(writer)


#: Durable work's lease outlasts the invocation's deadline by this much, so no worker takes
#: it while the environment may still run it (async work is cut at the deadline, and Lambda
#: ends an environment that overruns it).
DURABLE_LEASE_SLACK = 10.0
#: The lease with no deadline known (a direct call): Lambda's longest timeout.
DURABLE_LEASE_UNBOUNDED = 900.0


#: Seconds kept free before the invocation deadline when draining: spilling needs a moment.
DEFAULT_DRAIN_MARGIN = 0.5
#: Of the margin, what an overrunning thread leaves the host to report the invocation done
#: before the real deadline.
_NEXT_SLACK = 0.2


def drain_budget(context: Any, margin: float = DEFAULT_DRAIN_MARGIN) -> float | None:
    """Seconds a drain may take: the invocation's remaining time less ``margin``; ``None`` for a
    context without a deadline."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return max(0.0, float(remaining()) / 1000 - margin)


def _remaining(loop: asyncio.AbstractEventLoop, deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - loop.time())


def current() -> PendingWork | None:
    """The pending-work set of the invocation being handled, if any."""
    return _current.get()


def bind(pending: PendingWork) -> contextvars.Token[PendingWork | None]:
    return _current.set(pending)


def unbind(token: contextvars.Token[PendingWork | None]) -> None:
    _current.reset(token)


def after_response(
    fn: Callable[..., Any], *args: Any, durable: bool = False, **kwargs: Any
) -> WorkHandle:
    """Run ``fn(*args, **kwargs)`` after the response is sent and before Lambda freezes.

    A coroutine function runs on the event loop, a plain function in the thread pool. Call it
    anywhere while a request is handled by holdfast; the returned handle tells the work's state.

    ``durable=True`` (a holdfast task only): the work is first written to its task queue,
    here, before the response can go out; it runs in this environment after the response and
    is marked done there. If the environment dies first, the queue's workers run it
    (at least once). ``handle.task_id`` is its task id.
    """
    pending = _current.get()
    if pending is None:
        raise RuntimeError("after_response() was called outside a request handled by holdfast")
    if durable:
        return pending.defer_durable(fn, *args, **kwargs)
    return pending.defer(fn, *args, **kwargs)


def on_response_sent(callback: Callable[[], Any]) -> WorkHandle:
    """Run ``callback()`` once the last body chunk of the current response has gone out.

    For middleware and telemetry: finish a span, flush metrics. It counts as pending work, so
    the environment is not frozen before it returns.
    """
    return after_response(callback)


def _describe(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or repr(fn)
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module else name
