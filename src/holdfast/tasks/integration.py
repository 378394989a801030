"""How the task queue plugs into holdfast's core, through the core's registration hooks.

The core (:mod:`holdfast.dispatch`, :mod:`holdfast.pending`) never imports ``holdfast.tasks``:
importing the task queue registers here its two event kinds (an SQS batch of task messages, a
schedule of periodic tasks) with their handlers, the write-ahead of durable after-response
work (:mod:`.durable`), and the spill of a :class:`Task` the drain's
deadline cuts off (re-enqueued instead of lost).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from holdfast import dispatch, pending

from .durable import write_ahead
from .task import Task


def _is_task_batch(event: Any) -> bool:
    from .lambda_consumer import is_task_batch  # the consumer's imports only when asked

    return is_task_batch(event)


def _is_task_schedule(event: Any) -> bool:
    from .lambda_consumer import is_task_schedule

    return is_task_schedule(event)


async def _handle_task_batch(event: Any, context: Any) -> Any:
    from .lambda_consumer import handle_task_batch

    return await handle_task_batch(event, context)


async def _handle_task_schedule(event: Any, context: Any) -> Any:
    from .lambda_consumer import handle_task_schedule

    return await handle_task_schedule(event, context)


def _spill(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[[], Awaitable[Any]] | None:
    if not isinstance(fn, Task):
        return None
    return functools.partial(fn.defer, *args, **kwargs)


def register() -> None:
    """Plug the task queue into the core (idempotent; done when ``holdfast.tasks`` is imported)."""
    dispatch.claim(dispatch.TASK_MESSAGES, ("sqs",), _is_task_batch, _handle_task_batch)
    dispatch.claim(
        dispatch.TASK_SCHEDULE, ("schedule", "custom"), _is_task_schedule, _handle_task_schedule
    )
    pending.spill_with(_spill)
    pending.write_ahead_with(write_ahead)
