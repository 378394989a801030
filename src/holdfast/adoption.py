"""Tasks a request starts are part of its after-response work: the rule, and the task factory.

While an invocation is handled, its :class:`~holdfast.pending.PendingWork` is bound in a context
variable, and every asyncio task created in that context (by the app, its ``BackgroundTasks``,
after-response work, tasks those create) goes through the loop's task factory installed here.

**The rule.** A task is adopted when the code that asked for it — the first frame outside
asyncio itself — is the app's own code: not the standard library, not an installed distribution
(site-packages, or a ``*.dist-info`` beside it, as ``pip install -t`` leaves in a Lambda
package), not holdfast. ``asyncio.create_task(job())`` in a route is adopted; the keep-alive
task a websocket client or a connection pool starts lazily during the first request is not (it
lives as long as the environment and would hold every invocation to its deadline). Both ways can
be overridden per task: :func:`adopt` and :func:`detach`.

Adopted tasks that end before the response cost nothing more; those still running when the
response has gone out are waited for by the drain, bounded by the deadline, and cancelled and
reported with where they began when it cuts them off. Tasks created during init or lifespan
startup are never adopted: no invocation is bound then. With no invocation bound the factory
costs one context-variable read.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Awaitable, Coroutine, Generator
from types import FrameType
from typing import Any

from holdfast import pending as _pending
from holdfast.appcode import is_app_file

__all__ = ["adopt", "app_origin", "detach", "install"]

_ASYNCIO_DIR = os.path.dirname(os.path.realpath(asyncio.__file__)) + os.sep


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Create ``loop``'s tasks through the adopting factory (idempotent). A factory the app
    sets later replaces it, and adoption is then off."""
    if loop.get_task_factory() is not _create_task:
        loop.set_task_factory(_create_task)


def _create_task(
    loop: asyncio.AbstractEventLoop,
    coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any],
    **options: Any,
) -> asyncio.Task[Any]:
    # asyncio.tasks.Task looked up at each call, as the loop does (holdfast dev's probe
    # replaces it).
    task: asyncio.Task[Any] = asyncio.tasks.Task(coro, loop=loop, **options)
    context = options.get("context")
    work = _pending.current() if context is None else context.get(_pending.CURRENT)
    if work is not None and work.adopts:
        frame = _creator(sys._getframe(1))
        if frame is not None and is_app_file(frame.f_code.co_filename):
            # Described only if it is still running at the drain (most tasks end before).
            where = (frame.f_code.co_filename, frame.f_lineno)
            work.adopt(task, functools.partial(_describe, task, "started", where))
    return task


def start_request(
    loop: asyncio.AbstractEventLoop,
    coro: Awaitable[Any],
    work: _pending.PendingWork,
    *,
    adopts: bool,
) -> asyncio.Task[Any]:
    """The task of one request's app (or event handler): ``work`` bound in its context, so
    what the app starts joins it (from then on ``work.adopts`` is ``adopts``); never adopted
    itself (the invocation follows it).

    On a running loop (an async host) the task starts eagerly where Python can (3.12+): its
    first step runs now, as the task it is, so a plain endpoint has answered before this
    returns and the host waits no turn of the loop for it."""
    # The task copies the current context: bind the pending-work set just around its creation.
    token = _pending.bind(work)
    try:
        if loop.get_task_factory() is _create_task:
            # What the factory would do for a task it does not adopt, without its frame walk.
            # The task is made here, not by the factory, so what its eager first step starts is
            # adopted as the app's from the start.
            work.adopts = adopts
            return _request_task(loop, coro)
        # An app's own factory may hand the task to the adopting one: adopted only after it.
        # An ASGI app is typed as returning an awaitable; every real one is a coroutine.
        task: asyncio.Task[Any] = loop.create_task(coro)  # type: ignore[arg-type]
        work.adopts = adopts
        return task
    finally:
        _pending.unbind(token)


def _request_task(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
    # asyncio.tasks.Task looked up at each call, as the loop does (see _create_task).
    task_class = asyncio.tasks.Task
    if not _EAGER:
        return task_class(coro, loop=loop)
    try:
        return task_class(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        # A Task class put in asyncio's place by a library written before eager_start (the
        # loop never passes it): the task starts as the loop would start it.
        return task_class(coro, loop=loop)


# Python 3.12+ runs a task's first step in its constructor when the loop is running (and only
# then: the synchronous handler steps the loop itself, and schedules the step as before).
_EAGER = sys.version_info >= (3, 12)


def _creator(frame: FrameType | None) -> FrameType | None:
    """The frame that asked for a task: the first outside asyncio's own."""
    while frame is not None and frame.f_code.co_filename.startswith(_ASYNCIO_DIR):
        frame = frame.f_back
    return frame


def app_origin(frame: FrameType | None) -> str | None:
    """``file:line`` of the frame that asked for a task, skipping asyncio's own frames, when it
    is the app's own code; ``None`` for a library's (or holdfast's) request."""
    frame = _creator(frame)
    if frame is None or not is_app_file(frame.f_code.co_filename):
        return None
    return _where((frame.f_code.co_filename, frame.f_lineno))


def _where(where: tuple[str, int]) -> str:
    return f"{os.path.relpath(where[0])}:{where[1]}"


def _describe(task: asyncio.Task[Any], how: str, where: tuple[str, int] | str) -> str:
    place = where if isinstance(where, str) else _where(where)
    return f"task {_task_name(task.get_coro(), task)} {how} at {place}"


def _task_name(coro: object, task: asyncio.Task[Any]) -> str:
    name = getattr(coro, "__qualname__", None)
    return str(name) if name else task.get_name()


def adopt(task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    """Make ``task`` part of the current invocation's after-response work, whoever created it
    (a library's task the rule leaves alone); returns it."""
    work = _pending.current()
    if work is None:
        raise RuntimeError("adopt() was called outside a request handled by holdfast")
    origin = app_origin(sys._getframe(1)) or "an explicit adopt()"
    work.adopt(task, functools.partial(_describe, task, "adopted", origin))
    return task


def detach(task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    """Keep ``task`` out of the current invocation's after-response work: a task of the app's
    that should outlive the request (a listener, a poller) runs on, unwaited and uncancelled;
    returns it. Outside a request it does nothing."""
    work = _pending.current()
    if work is not None:
        work.detach(task)
    return task
