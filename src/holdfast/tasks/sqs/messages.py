"""The task message on SQS: its JSON body, its message attribute and the service's limits.

A body is `{"holdfast": 1, "queue", "task", "id", "args", "kwargs", "run_at"}`; the
`holdfast-queue` message attribute names the holdfast queue (several may share an SQS queue).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..errors import InvalidArguments
from ..message import dumps, message_body
from ..models import Job

#: SQS limits: DelaySeconds <= 15 minutes, visibility timeout <= 12 hours.
MAX_DELAY = 900
MAX_VISIBILITY = 43200
#: The largest SQS message (body and attributes), 1 MiB since August 2025.
MAX_MESSAGE_BYTES = 1024 * 1024
MESSAGE_ATTRIBUTE = "holdfast-queue"
#: The most entries one SQS batch call (and one receive) takes.
MAX_BATCH = 10

_T = TypeVar("_T")


def encode_message(queue: str, task_id: str, job: Job) -> str:
    """The message body of `job`; raises InvalidArguments when SQS would refuse its size."""
    text = dumps(message_body(queue, job.task, task_id, job.args, job.kwargs, job.run_at))
    # Checked before anything is stored: SQS would refuse it after the status was written.
    size = len(text.encode()) + len(MESSAGE_ATTRIBUTE) + len("String") + len(queue)
    if size > MAX_MESSAGE_BYTES:
        raise InvalidArguments(
            f"the task message would be {size} bytes; SQS takes at most {MAX_MESSAGE_BYTES}"
            " (pass a reference to large data, not the data)"
        )
    return text


def batches(items: Sequence[_T]) -> list[Sequence[_T]]:
    """`items` in runs of at most `MAX_BATCH`, one per SQS batch call."""
    return [items[start : start + MAX_BATCH] for start in range(0, len(items), MAX_BATCH)]


def message_attributes(queue: str) -> dict[str, Any]:
    return {MESSAGE_ATTRIBUTE: {"DataType": "String", "StringValue": queue}}


def delay_seconds(seconds: float) -> int:
    """An SQS DelaySeconds for a wait of `seconds` (a longer one is caught up on receipt)."""
    return max(0, min(MAX_DELAY, math.ceil(seconds)))


def visibility(seconds: float) -> int:
    """An SQS VisibilityTimeout for `seconds`."""
    return max(0, min(math.ceil(seconds), MAX_VISIBILITY))


def region_of(queue_url: str) -> str | None:
    """The AWS region in an SQS queue URL, if it names one."""
    host = urlsplit(queue_url).hostname or ""
    parts = host.split(".")
    # sqs.<region>.amazonaws.com (or <region>.queue.amazonaws.com, the legacy form)
    if len(parts) >= 4 and parts[-2] == "amazonaws":
        return parts[1] if parts[0] == "sqs" else parts[0]
    return None
