"""Exceptions raised by the task queue, and the one a task raises to fail for good.

They belong to holdfast's one hierarchy: `except holdfast.errors.HoldfastError` catches them.
"""

from __future__ import annotations

from holdfast.errors import HoldfastError


class TaskError(HoldfastError):
    """Base class of every error the task queue raises."""


class InvalidArguments(TaskError, TypeError):
    """Arguments that do not fit the task's signature or cannot travel as JSON.

    Raised by `defer` before anything is stored; at run time the same problem makes the
    task dead (retrying cannot fix bad input).
    """


class UnknownTask(TaskError, LookupError):
    """A task name that no `@queue.task` registered."""


class TaskTimeout(TaskError, TimeoutError):
    """An attempt ran longer than the task's `timeout`."""


class TaskFailed(TaskError):
    """Raise from a task to fail it permanently: state `failed`, no retry, no dead-letter queue."""


class BackendError(TaskError):
    """A storage or delivery backend could not be used (bad URL, missing dependency)."""


_MAX_DESCRIPTION = 2000


def error_text(exc: BaseException) -> str:
    """`Type: message` for storage and HTTP; tracebacks stay in the log."""
    message = str(exc)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:_MAX_DESCRIPTION]
