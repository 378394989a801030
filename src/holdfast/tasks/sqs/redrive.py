"""The SQS queue's redrive policy, and reconciling the status table with the dead-letter queue.

A message whose last allowed receive went to a worker that died before recording the attempt
(killed in a long poll, say) is moved to the dead-letter queue by SQS while its status says
otherwise; nothing else would ever tell, so maintenance looks into the dead-letter queue.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ..backend import ParallelCalls
from ..message import parse_message
from .messages import MAX_BATCH, batches
from .status_table import StatusTable

logger = logging.getLogger("holdfast.tasks")

#: How often a worker's maintenance looks into the dead-letter queue, and how many batches
#: of 10 messages it reads each time.
RECONCILE_EVERY = 5.0
RECONCILE_ROUNDS = 10


@dataclasses.dataclass(frozen=True, slots=True)
class Redrive:
    """A queue's redrive policy: the receive limit and the dead-letter queue's ARN."""

    max_receives: int
    target_arn: str

    @classmethod
    def parse(cls, policy: str | None) -> Redrive | None:
        if not policy:
            return None
        try:
            fields = json.loads(policy)
            return cls(int(fields["maxReceiveCount"]), str(fields["deadLetterTargetArn"]))
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable RedrivePolicy %r: treated as none", policy)
            return None

    def target(self) -> dict[str, str]:
        """`get_queue_url` arguments for the dead-letter queue (arn:aws:sqs:region:account:name)."""
        parts = self.target_arn.split(":")
        if len(parts) < 6:
            return {"QueueName": parts[-1]}
        return {"QueueName": parts[5], "QueueOwnerAWSAccountId": parts[4]}


class DeadLetterReconciler:
    """Marks `dead` the tasks of one queue whose message sits in the dead-letter queue."""

    def __init__(self, sqs: Callable[[], Any], table: StatusTable, calls: ParallelCalls) -> None:
        self._sqs = sqs  # the backend's client, made on first use
        self._table = table
        self._calls = calls
        self._dead_letter_url: str | None = None
        self._last = -math.inf
        #: Seconds between two looks into the dead-letter queue.
        self.every = RECONCILE_EVERY

    def maybe_run(self, redrive: Redrive) -> None:
        """Reconcile unless the last look was less than `every` seconds ago."""
        if time.monotonic() < self._last + self.every:
            return
        self._last = time.monotonic()
        sqs = self._sqs()
        if self._dead_letter_url is None:
            self._dead_letter_url = sqs.get_queue_url(**redrive.target())["QueueUrl"]
        self._reconcile(sqs, self._dead_letter_url, redrive)

    def _reconcile(self, sqs: Any, dead_letter_url: str, redrive: Redrive) -> None:
        seen: list[dict[str, Any]] = []
        try:
            # Hide what was looked at so the next receive returns other messages; put it all
            # back at once afterwards. The DLQ's consumers see nothing missing for long.
            for _ in range(RECONCILE_ROUNDS):
                batch = sqs.receive_message(
                    QueueUrl=dead_letter_url,
                    MaxNumberOfMessages=MAX_BATCH,
                    VisibilityTimeout=30,
                    WaitTimeSeconds=0,
                ).get("Messages", [])
                seen += batch
                if len(batch) < MAX_BATCH:
                    break
            marks = [
                functools.partial(self._mark_dead_lettered, message["Body"], redrive)
                for message in seen
            ]
            self._calls.run(marks, None)
        finally:
            for batch in batches(seen):
                sqs.change_message_visibility_batch(
                    QueueUrl=dead_letter_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                        for i, m in enumerate(batch)
                    ],
                )

    def _mark_dead_lettered(self, body: str, redrive: Redrive) -> None:
        try:
            message = parse_message(body)
        except ValueError:
            return  # not ours
        if message.get("queue") != self._table.queue:
            return
        error = (
            "DeadLettered: the redrive policy moved the message to the dead-letter queue"
            f" after {redrive.max_receives} receives"
        )
        if self._table.mark_dead(message["id"], error):  # else final already: status is true
            logger.warning("task %s: %s", message["id"], error)
