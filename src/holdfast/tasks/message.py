"""The JSON body of a holdfast task message, for the backends that carry tasks as queue messages
(SQS, Azure Queue Storage).

A body is ``{"holdfast": 1, "queue", "task", "id", "args", "kwargs", "run_at"}``. A backend whose
messages are too small for some arguments keeps those in its status store and sends
``"payload": "entity"`` instead of ``args``/``kwargs``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import error_text

#: What :func:`holdfast.tasks.models.new_task_id` makes; anything else never came from holdfast.
TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def message_body(
    queue: str, task: str, task_id: str | None, args: Any, kwargs: Any, run_at: float
) -> dict[str, Any]:
    """The fields of a task message (serialise with :func:`dumps`)."""
    return {
        "holdfast": 1,
        "queue": queue,
        "task": task,
        "id": task_id,
        "args": args,
        "kwargs": kwargs,
        "run_at": run_at,
    }


def without_arguments(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with its arguments left in the backend's status store."""
    slim = {key: value for key, value in body.items() if key not in ("args", "kwargs")}
    slim["payload"] = "entity"
    return slim


def dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def parse_message(body: str, *, stored_arguments: bool = False) -> dict[str, Any]:
    """The fields of a holdfast message body; raises ValueError for anything else (a message
    holdfast did not write). ``stored_arguments``: the backend may have left the arguments in its
    status store (``"payload": "entity"``)."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not JSON ({error_text(exc)})") from None
    if not isinstance(message, dict) or message.get("holdfast") != 1:
        raise ValueError("not a holdfast task message")
    if not isinstance(message.get("id"), str) or not isinstance(message.get("task"), str):
        raise ValueError("id and task must be strings")
    if not TASK_ID.fullmatch(message["id"]):
        raise ValueError("the task id has characters holdfast never puts in one")
    if stored_arguments and message.get("payload") == "entity":
        return message
    if not isinstance(message.get("args"), list) or not isinstance(message.get("kwargs"), dict):
        raise ValueError("args must be a list and kwargs an object")
    return message
