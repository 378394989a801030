"""The AWS backend: SQS delivers tasks, a DynamoDB table keeps their status.

`backend` delivers (send, receive, visibility as the lease, delete), `status_table` keeps
each task's status item, `redrive` reconciles it with the dead-letter queue, `messages` is
the wire format. Users reach it through `TaskQueue("sqs://...")` and
`holdfast.tasks.create_table`.
"""

from .backend import SQSBackend
from .messages import MAX_MESSAGE_BYTES, MESSAGE_ATTRIBUTE
from .status_table import create_table

__all__ = ["MAX_MESSAGE_BYTES", "MESSAGE_ATTRIBUTE", "SQSBackend", "create_table"]
