"""The AWS backend: SQS delivers tasks, a DynamoDB table keeps their status.

A running message's visibility timeout is its lease; a retry changes the visibility to the
backoff delay; a dead message is returned to the queue at once so the queue's redrive policy
moves it to the dead-letter queue (set `maxReceiveCount` to at least `retries + 1`). Without a
redrive policy a dead message is deleted: its status item keeps the error.

Status under crashes. Workers and Lambda invocations die at any instant (SIGKILL, timeouts),
so every status write is conditional and idempotent:

* an attempt starts with a conditional update that records a fresh `lease` id, the time its
  visibility lapses (`lease_until`, pushed forward with the visibility) and the message's
  receive count;
* a settlement is written only by the attempt that holds the lease, except a success, which
  always wins over anything but a success (a superseded attempt that did succeed did run);
* the redrive policy's `maxReceiveCount` is the last word on dead-lettering: an attempt that
  fails on the message's last allowed receive is written `dead`, not `retrying` (SQS would move
  its message to the dead-letter queue instead of delivering the retry);
* a `running` item whose lease lapsed is read as `retrying` ("WorkerLost": SQS delivers the
  message again), or as `dead` when that was the last allowed receive (SQS moves the message
  to the dead-letter queue on its next receive): status never says `running` for a task
  nothing is running.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

from ..backend import Listeners, ParallelCalls
from ..errors import BackendError
from ..message import parse_message
from ..models import Delivery, Job, Settlement, TaskState, TaskStatus, new_task_id
from .messages import (
    MAX_BATCH,
    batches,
    delay_seconds,
    encode_message,
    message_attributes,
    region_of,
    visibility,
)
from .redrive import DeadLetterReconciler, Redrive
from .status_table import DEFAULT_KEEP_SECONDS, StatusTable

logger = logging.getLogger("holdfast.tasks")

_UNKNOWN = object()


class SQSBackend:
    """One holdfast queue on one SQS queue plus a DynamoDB status table."""

    blocking = True

    def __init__(
        self,
        queue_url: str,
        table: str,
        *,
        queue: str = "default",
        endpoint_url: str | None = None,
        region: str | None = None,
        wait_seconds: int = 5,
        keep_seconds: int = DEFAULT_KEEP_SECONDS,
    ) -> None:
        if importlib.util.find_spec("boto3") is None:  # pragma: no cover - the `aws` extra
            raise BackendError("the SQS backend needs boto3: pip install boto3")
        self.queue_url = queue_url
        self.table = table
        self.queue = queue
        self.sqs_queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        self.wait_seconds = max(0, min(int(wait_seconds), 20))
        self._client_options = {
            "region_name": region or region_of(queue_url),
            "endpoint_url": endpoint_url,
        }
        self._listeners = Listeners()
        self._redrive: object = _UNKNOWN  # a Redrive, or None: no redrive policy
        self._calls = ParallelCalls(10, "holdfast-sqs")
        self.status_table = StatusTable(
            table, queue=queue, client_options=self._client_options, keep_seconds=keep_seconds
        )
        self._reconciler = DeadLetterReconciler(lambda: self._sqs, self.status_table, self._calls)

    @property
    def keep_seconds(self) -> int:
        """How long a finished task's status stays readable (the table's TTL)."""
        return self.status_table.keep_seconds

    @property
    def reconcile_every(self) -> float:
        """Seconds between two looks into the dead-letter queue by `maintain()`."""
        return self._reconciler.every

    @reconcile_every.setter
    def reconcile_every(self, seconds: float) -> None:
        self._reconciler.every = seconds

    # boto3 is imported and its client made on first use: a Lambda cold start that serves
    # requests without deferring anything does not pay for it.
    @functools.cached_property
    def _sqs(self) -> Any:
        import boto3  # type: ignore[import-untyped]

        return boto3.client("sqs", **self._client_options)

    @classmethod
    def from_url(cls, rest: str, *, queue: str, endpoint_url: str | None = None) -> SQSBackend:
        """From the part of `sqs://<queue-url>?table=T[&region=R][&wait=S][&keep=S]`."""
        queue_url, _, query = rest.partition("?")
        options = {key: values[-1] for key, values in parse_qs(query).items()}
        if "table" not in options:
            raise BackendError("sqs:// URLs need ?table=<dynamodb-table> for task status")
        if not queue_url.startswith(("http://", "https://")):
            queue_url = "https://" + queue_url
        return cls(
            queue_url,
            options["table"],
            queue=queue,
            endpoint_url=endpoint_url,
            region=options.get("region"),
            wait_seconds=int(options.get("wait", 5)),
            keep_seconds=int(options.get("keep", DEFAULT_KEEP_SECONDS)),
        )

    def close(self) -> None:
        self._calls.close()
        client = self.__dict__.pop("_sqs", None)
        if client is not None:
            client.close()
        self.status_table.close()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self._listeners.subscribe(callback)

    # -- producing --------------------------------------------------------------------------

    def enqueue(self, job: Job) -> tuple[str, bool]:
        task_id = new_task_id()
        text = encode_message(self.queue, task_id, job)
        # The status item goes first: a worker that receives the message finds it.
        self.status_table.add_queued(task_id, job)
        if job.idempotency_key is not None:
            existing = self.status_table.own_key(job.idempotency_key, task_id)
            if existing is not None:
                self.status_table.remove(task_id)
                return existing, False
        try:
            self._sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=text,
                DelaySeconds=delay_seconds(job.run_at - time.time()),
                MessageAttributes=message_attributes(self.queue),
            )
        except Exception:
            self.status_table.remove(task_id)
            raise
        self._listeners.notify()
        return task_id, True

    def hold(self, job: Job, lease: float) -> tuple[str, Delivery | None]:
        """The write-ahead: a status item for the caller's running attempt, and the message
        sent delayed by the lease (its `run_at` too, for a lease past SQS's 15-minute delay),
        so no worker receives it while the caller runs it. The caller's delivery has no
        receipt handle: its settlement writes the status only, and the message, once it
        surfaces, is dropped as the duplicate of a finished task or runs as the retry."""
        task_id, now = new_task_id(), time.time()
        text = encode_message(self.queue, task_id, dataclasses.replace(job, run_at=now + lease))
        delivery = Delivery(
            task_id, job.task, job.args, job.kwargs, 1, None, lease=secrets.token_hex(8)
        )
        assert delivery.lease is not None
        self.status_table.add_running(task_id, job, delivery.lease, now + lease)
        if job.idempotency_key is not None:
            existing = self.status_table.own_key(job.idempotency_key, task_id)
            if existing is not None:
                self.status_table.remove(task_id)
                return existing, None
        try:
            self._sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=text,
                DelaySeconds=delay_seconds(lease),
                MessageAttributes=message_attributes(self.queue),
            )
        except Exception:
            self.status_table.remove(task_id)
            raise
        return task_id, delivery

    # -- consuming --------------------------------------------------------------------------

    def claim(self, limit: int, lease: float) -> list[Delivery]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(limit, MAX_BATCH)),
            VisibilityTimeout=visibility(lease),
            WaitTimeSeconds=self.wait_seconds,
            MessageAttributeNames=["All"],
            AttributeNames=["ApproximateReceiveCount"],
        )
        accepts = [
            functools.partial(self._accept_received, message, lease)
            for message in response.get("Messages", [])
        ]
        # A message that could not be started comes back when its visibility lapses; the
        # rest of the batch goes on.
        return [d for d in self._calls.run(accepts, None) if d is not None]

    def _accept_received(self, message: dict[str, Any], lease: float) -> Delivery:
        count = message.get("Attributes", {}).get("ApproximateReceiveCount")
        return self.accept(
            message["Body"],
            message["ReceiptHandle"],
            message["MessageId"],
            lease=lease,
            receive_count=int(count) if count is not None else None,
        )

    def settle_and_claim(
        self, settlements: Sequence[Settlement], limit: int, lease: float
    ) -> list[Delivery]:
        self.settle(settlements)
        return self.claim(limit, lease) if limit else []

    def accept(
        self,
        body: str,
        receipt: str,
        message_id: str,
        *,
        managed: bool = False,
        lease: float = 30.0,
        receive_count: int | None = None,
    ) -> Delivery:
        """A delivery for one received message; `managed`: Lambda deletes it on success.

        `lease` is how long the message stays invisible, `receive_count` its
        ApproximateReceiveCount (it decides, with the redrive policy, when a retry is
        impossible).
        """
        try:
            message = parse_message(body)
        except ValueError as exc:
            logger.error("message %s is not a holdfast task: %s", message_id, exc)
            error = f"corrupt message body: {exc}"
            return Delivery(
                None, "", [], {}, 0, receipt, error, message_id=message_id, managed=managed
            )
        task_id = message["id"]
        delivery = Delivery(
            task_id,
            message["task"],
            message["args"],
            message["kwargs"],
            0,
            receipt,
            message_id=message_id,
            managed=managed,
            lease=secrets.token_hex(8),
            receives=receive_count,
        )
        run_at = message.get("run_at")
        if isinstance(run_at, (int, float)) and run_at > time.time() + 1:
            delivery.not_before = float(run_at)  # a longer delay than SQS allows: not due yet
            return delivery
        attempt = self.status_table.start_attempt(delivery, lease, self.max_receives())
        if attempt is None:
            status = self.status_table.get(task_id)
            delivery.settled = status.state if status is not None else TaskState.DEAD
            return delivery
        delivery.attempt = attempt
        return delivery

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        timeout = visibility(lease)
        for chunk in batches(deliveries):
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": d.token, "VisibilityTimeout": timeout}
                    for i, d in enumerate(chunk)
                ],
            )
        until = time.time() + timeout
        extend = self.status_table.extend_lease
        self._calls.run([functools.partial(extend, d, until) for d in deliveries], None)

    def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        # Statuses first, all at once: the window in which a crash loses a settlement that
        # already happened is one round trip, not one per task of the batch.
        settles = [functools.partial(self._settle, settlement) for settlement in settlements]
        outcomes: list[bool | None] = self._calls.run(settles, default=False)
        # Then the consumed messages, ten to a call (SQS bills per request).
        tokens = [
            s.delivery.token
            for s, outcome in zip(settlements, outcomes, strict=True)
            if outcome is None and s.delivery.token is not None
        ]
        kept = self._delete(tokens)
        return [
            outcome is True or (outcome is None and s.delivery.token not in kept)
            for s, outcome in zip(settlements, outcomes, strict=True)
        ]

    def _delete(self, tokens: Sequence[str]) -> set[str]:
        """Delete the messages of ``tokens`` (receipt handles); the ones SQS did not delete.

        A message left undeleted comes back when its visibility lapses and is dropped then,
        as the duplicate of a task whose status is already final.
        """
        runs = batches(tokens)
        failed = self._calls.run(
            [functools.partial(self._delete_batch, run) for run in runs], default=None
        )
        return {
            token
            for batch, not_deleted in zip(runs, failed, strict=True)
            for token in (batch if not_deleted is None else not_deleted)
        }

    def _delete_batch(self, tokens: Sequence[str]) -> list[str]:
        response = self._sqs.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": token} for i, token in enumerate(tokens)],
        )
        failed = response.get("Failed", [])
        for entry in failed:
            logger.warning(
                "SQS did not delete a settled message (%s: %s); it is dropped when it comes back",
                entry.get("Code"),
                entry.get("Message"),
            )
        return [tokens[int(entry["Id"])] for entry in failed]

    def _settle(self, settlement: Settlement) -> bool | None:
        """Write the settlement's status and release its message if it is owed back; whether
        the delivery is consumed, ``None``: consumed once its message is deleted."""
        delivery, now = settlement.delivery, time.time()
        state = settlement.state
        if state is TaskState.RETRYING and self._last_receive(delivery):
            state = TaskState.DEAD  # SQS moves the message to the DLQ on its next receive
            error = _no_retry(settlement, delivery)
            settlement = dataclasses.replace(settlement, state=state, error=error)
        if settlement.write and delivery.id is not None:
            self.status_table.write_settlement(settlement, now)
        if delivery.token is None:  # a write-ahead (`hold`): its message is still delayed
            return state.is_final
        if state in (TaskState.QUEUED, TaskState.RETRYING):
            self._release(delivery, (settlement.run_at or now) - now)
            return False
        if state is TaskState.DEAD and self.max_receives() is not None:
            self._release(delivery, 0)  # the redrive policy moves it to the dead-letter queue
            return False
        return True if delivery.managed else None

    def _last_receive(self, delivery: Delivery) -> bool:
        limit = self.max_receives()
        return limit is not None and delivery.receives is not None and delivery.receives >= limit

    def _release(self, delivery: Delivery, delay: float) -> None:
        self._sqs.change_message_visibility(
            QueueUrl=self.queue_url,
            ReceiptHandle=delivery.token,
            VisibilityTimeout=visibility(delay),
        )

    def max_receives(self) -> int | None:
        """The redrive policy's `maxReceiveCount`, or None without a redrive policy."""
        redrive = self._redrive_policy()
        return None if redrive is None else redrive.max_receives

    def _redrive_policy(self) -> Redrive | None:
        if self._redrive is _UNKNOWN:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"]
            ).get("Attributes", {})
            self._redrive = Redrive.parse(attributes.get("RedrivePolicy"))
        return self._redrive if isinstance(self._redrive, Redrive) else None

    def maintain(self) -> None:
        """Every `reconcile_every` seconds, mark `dead` the tasks whose message the redrive
        policy moved to the dead-letter queue while their status says otherwise (SQS
        redelivers everything else by itself once a visibility timeout lapses)."""
        redrive = self._redrive_policy()
        if redrive is not None:
            self._reconciler.maybe_run(redrive)

    def claim_slot(self, name: str, slot: float) -> bool:
        return self.status_table.claim_slot(name, slot)

    # -- status -----------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskStatus | None:
        return self.status_table.get(task_id)

    def list(
        self, *, state: TaskState | None = None, task: str | None = None, limit: int = 50
    ) -> list[TaskStatus]:
        return self.status_table.list(state=state, task=task, limit=limit)


def _no_retry(settlement: Settlement, delivery: Delivery) -> str:
    return (
        f"{settlement.error}; no retry: the message was received {delivery.receives} times,"
        " the redrive policy's maxReceiveCount"
    )
