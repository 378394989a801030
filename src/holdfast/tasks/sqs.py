"""The AWS backend: SQS delivers tasks, a DynamoDB table keeps their status.

Messages are JSON (`{"holdfast": 1, "queue", "task", "id", "args", "kwargs", "run_at"}`) with a
`holdfast-queue` message attribute. A running message's visibility timeout is its lease; a
retry changes the visibility to the backoff delay; a dead message is returned to the queue at
once so the queue's redrive policy moves it to the dead-letter queue (set `maxReceiveCount` to
at least `retries + 1`). Without a redrive policy a dead message is deleted: its status item
keeps the error.

Status under crashes. Workers and Lambda invocations die at any instant (SIGKILL, timeouts),
so every status write is conditional and idempotent:

* an attempt starts with a conditional update that records a fresh `lease` id, the time its
  visibility lapses (`lease_until`, pushed forward with the visibility) and the message's
  receive count;
* an outcome is written only by the attempt that holds the lease, except a success, which
  always wins over anything but a success (a superseded attempt that did succeed did run);
* the redrive policy's `maxReceiveCount` is the last word on dead-lettering: an attempt that
  fails on the message's last allowed receive is written `dead`, not `retrying` (SQS would move
  its message to the dead-letter queue instead of delivering the retry);
* a `running` item whose lease lapsed is read as `retrying` ("WorkerLost": SQS delivers the
  message again), or as `dead` when that was the last allowed receive (SQS moves the message
  to the dead-letter queue on its next receive): status never says `running` for a task
  nothing is running.

The status table needs one string partition key, `id`. Listing scans it (fine for a dev or
moderate table; add a GSI for large ones).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .backend import Listeners, ParallelCalls
from .errors import BackendError, InvalidArguments, describe
from .models import PENDING_STATES, Delivery, Job, Outcome, TaskState, TaskStatus, new_task_id

logger = logging.getLogger("holdfast.tasks")

#: SQS limits: DelaySeconds <= 15 minutes, visibility timeout <= 12 hours.
MAX_DELAY = 900
MAX_VISIBILITY = 43200
#: The largest SQS message (body and attributes), 1 MiB since August 2025.
MAX_MESSAGE_BYTES = 1024 * 1024
MESSAGE_ATTRIBUTE = "holdfast-queue"

_STARTABLE = "attribute_not_exists(#s) OR #s IN (:queued, :retrying, :running)"
_NAMES = {
    "#s": "state",
    "#q": "queue",
    "#t": "task",
    "#k": "kind",
    "#e": "error",
    "#r": "result",
    "#l": "lease",
}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(float(value)) if isinstance(value, float) else str(value)}


def _s(value: str | None) -> dict[str, Any]:
    return {"NULL": True} if value is None else {"S": value}


def _plain(value: dict[str, Any] | None) -> Any:
    """A DynamoDB attribute value as Python (other types as they come: then reported)."""
    if not value or "NULL" in value:
        return None
    if "N" in value:
        try:
            return float(value["N"])
        except ValueError:
            return value["N"]
    if "S" in value:
        return value["S"]
    return next(iter(value.values()))


def _region(queue_url: str) -> str | None:
    host = urlsplit(queue_url).hostname or ""
    parts = host.split(".")
    # sqs.<region>.amazonaws.com (or <region>.queue.amazonaws.com, the legacy form)
    if len(parts) >= 4 and parts[-2] == "amazonaws":
        return parts[1] if parts[0] == "sqs" else parts[0]
    return None


#: A finished task's status is kept a week before DynamoDB's TTL may delete it.
DEFAULT_KEEP_SECONDS = 7 * 24 * 3600


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
        #: How long a finished task's status stays readable: its `expires_at` (epoch seconds,
        #: the table's TTL attribute) is set this far past the moment it finished.
        self.keep_seconds = max(0, int(keep_seconds))
        self._client_options = {
            "region_name": region or _region(queue_url),
            "endpoint_url": endpoint_url,
        }
        self._listeners = Listeners()
        self._redrive: object = _UNKNOWN  # a _Redrive, or None: no redrive policy
        self._dead_letter_url: str | None = None
        self._last_reconcile = -math.inf
        #: Seconds between two looks into the dead-letter queue by `maintain()`.
        self.reconcile_every = RECONCILE_EVERY
        self._calls = ParallelCalls(10, "holdfast-sqs")

    # boto3 is imported and its clients made on first use: a Lambda cold start that serves
    # requests without deferring anything does not pay for them.
    @functools.cached_property
    def _sqs(self) -> Any:
        import boto3  # type: ignore[import-untyped]

        return boto3.client("sqs", **self._client_options)

    @functools.cached_property
    def _ddb(self) -> Any:
        import boto3

        return boto3.client("dynamodb", **self._client_options)

    @property
    def _conflict(self) -> type[Exception]:
        conflict: type[Exception] = self._ddb.exceptions.ConditionalCheckFailedException
        return conflict

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
        for name in ("_sqs", "_ddb"):
            client = self.__dict__.pop(name, None)
            if client is not None:
                client.close()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self._listeners.subscribe(callback)

    # -- producing --------------------------------------------------------------------------

    def enqueue(self, job: Job) -> tuple[str, bool]:
        task_id = new_task_id()
        body = {
            "holdfast": 1,
            "queue": self.queue,
            "task": job.task,
            "id": task_id,
            "args": job.args,
            "kwargs": job.kwargs,
            "run_at": job.run_at,
        }
        text = json.dumps(body, separators=(",", ":"))
        # Checked before anything is stored: SQS would refuse it after the status was written.
        size = len(text.encode()) + len(MESSAGE_ATTRIBUTE) + len("String") + len(self.queue)
        if size > MAX_MESSAGE_BYTES:
            raise InvalidArguments(
                f"the task message would be {size} bytes; SQS takes at most {MAX_MESSAGE_BYTES}"
                " (pass a reference to large data, not the data)"
            )
        item = {
            "id": _s(task_id),
            "kind": _s("task"),
            "queue": _s(self.queue),
            "task": _s(job.task),
            "state": _s(TaskState.QUEUED.value),
            "attempts": _n(0),
            "created_at": _n(job.created_at),
            "run_at": _n(job.run_at),
        }
        # The status item goes first: a worker that receives the message finds it.
        self._ddb.put_item(TableName=self.table, Item=item)
        if job.idempotency_key is not None:
            existing = self._own_key(job.idempotency_key, task_id)
            if existing is not None:
                self._ddb.delete_item(TableName=self.table, Key={"id": _s(task_id)})
                return existing, False
        try:
            self._sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=text,
                DelaySeconds=max(0, min(MAX_DELAY, math.ceil(job.run_at - time.time()))),
                MessageAttributes={
                    MESSAGE_ATTRIBUTE: {"DataType": "String", "StringValue": self.queue}
                },
            )
        except Exception:
            self._ddb.delete_item(TableName=self.table, Key={"id": _s(task_id)})
            raise
        self._listeners.notify()
        return task_id, True

    def _own_key(self, key: str, task_id: str) -> str | None:
        """Point the idempotency key at `task_id`; returns the pending task that owns it."""
        key_id = _s(f"idempotency#{self.queue}#{key}")
        condition, values = "attribute_not_exists(id)", dict[str, Any]()
        for _ in range(5):
            try:
                self._ddb.put_item(
                    TableName=self.table,
                    Item={"id": key_id, "kind": _s("idempotency"), "task_id": _s(task_id)},
                    ConditionExpression=condition,
                    **({"ExpressionAttributeValues": values} if values else {}),
                )
                return None
            except self._conflict:
                pass
            owner = _plain((self._item(key_id) or {}).get("task_id"))
            if not isinstance(owner, str):
                condition, values = "attribute_not_exists(id)", {}
                continue
            status = self.get(owner)
            # No status yet: the owner is being created right now, so it is pending.
            if status is None or status.state in PENDING_STATES:
                return owner
            condition, values = "task_id = :owner", {":owner": _s(owner)}
        raise BackendError(f"idempotency key {key!r} is contended")

    # -- consuming --------------------------------------------------------------------------

    def claim(self, limit: int, lease: float) -> list[Delivery]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(limit, 10)),
            VisibilityTimeout=min(math.ceil(lease), MAX_VISIBILITY),
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
        return [d for d in self._in_parallel(accepts) if d is not None]

    def _accept_received(self, message: dict[str, Any], lease: float) -> Delivery:
        count = message.get("Attributes", {}).get("ApproximateReceiveCount")
        return self.accept(
            message["Body"],
            message["ReceiptHandle"],
            message["MessageId"],
            lease=lease,
            receive_count=int(count) if count is not None else None,
        )

    def exchange(self, outcomes: Sequence[Outcome], limit: int, lease: float) -> list[Delivery]:
        self.settle(outcomes)
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
            message = _parse_body(body)
        except ValueError as exc:
            logger.error("message %s is not a holdfast task: %s", message_id, exc)
            error = f"corrupt message body: {exc}"
            return Delivery(
                None, "", [], {}, 0, receipt, error, message_id=message_id, managed=managed
            )
        task_id, task = message["id"], message["task"]
        delivery = Delivery(
            task_id,
            task,
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
        now = time.time()
        values = {
            ":running": _s("running"),
            ":queued": _s("queued"),
            ":retrying": _s("retrying"),
            ":now": _n(now),
            ":task_kind": _s("task"),
            ":queue": _s(self.queue),
            ":task": _s(task),
            ":one": _n(1),
            ":lease": _s(delivery.lease),
            ":until": _n(now + lease),
        }
        receives = ""
        if receive_count is not None:
            receives = ", receives = :receives"
            values[":receives"] = _n(receive_count)
        max_receives = self.max_receives()
        if max_receives is not None:
            receives += ", max_receives = :max_receives"
            values[":max_receives"] = _n(max_receives)
        try:
            attributes = self._ddb.update_item(
                TableName=self.table,
                Key={"id": _s(task_id)},
                UpdateExpression=(
                    "SET #s = :running, started_at = :now, #k = :task_kind, #l = :lease,"
                    " lease_until = :until, #q = if_not_exists(#q, :queue),"
                    " #t = if_not_exists(#t, :task), created_at = if_not_exists(created_at, :now)"
                    f"{receives} ADD attempts :one"
                ),
                ConditionExpression=_STARTABLE,
                ExpressionAttributeNames={k: _NAMES[k] for k in ("#s", "#k", "#q", "#t", "#l")},
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )["Attributes"]
        except self._conflict:
            status = self.get(task_id)
            delivery.settled = status.state if status is not None else TaskState.DEAD
            return delivery
        delivery.attempt = int(_plain(attributes["attempts"]))
        return delivery

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        timeout = min(math.ceil(lease), MAX_VISIBILITY)
        for start in range(0, len(deliveries), 10):
            chunk = deliveries[start : start + 10]
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": d.token, "VisibilityTimeout": timeout}
                    for i, d in enumerate(chunk)
                ],
            )
        # The status table's copy, so a reader can tell a long task from a lost worker.
        until = time.time() + timeout
        self._in_parallel([functools.partial(self._extend_lease, d, until) for d in deliveries])

    def _extend_lease(self, delivery: Delivery, until: float) -> None:
        if delivery.id is None or delivery.lease is None:
            return
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"id": _s(delivery.id)},
                UpdateExpression="SET lease_until = :until",
                ConditionExpression="#l = :lease AND #s = :running",
                ExpressionAttributeNames={"#l": "lease", "#s": "state"},
                ExpressionAttributeValues={
                    ":until": _n(until),
                    ":lease": _s(delivery.lease),
                    ":running": _s(TaskState.RUNNING.value),
                },
            )
        except self._conflict:
            pass  # superseded by another attempt, or finished: nothing to extend

    def settle(self, outcomes: Sequence[Outcome]) -> list[bool]:
        # Statuses first, all at once: the window in which a crash loses an outcome that
        # already happened is one round trip, not one per task of the batch.
        settles = [functools.partial(self._settle, outcome) for outcome in outcomes]
        return self._in_parallel(settles, default=False)

    def _settle(self, outcome: Outcome) -> bool:
        delivery, now = outcome.delivery, time.time()
        state = outcome.state
        if state is TaskState.RETRYING and self._last_receive(delivery):
            state = TaskState.DEAD  # SQS moves the message to the DLQ on its next receive
            outcome = dataclasses.replace(outcome, state=state, error=_no_retry(outcome, delivery))
        if outcome.write and delivery.id is not None:
            self._write_outcome(outcome, now)
        if state in (TaskState.QUEUED, TaskState.RETRYING):
            self._release(delivery, (outcome.run_at or now) - now)
            return False
        if state is TaskState.DEAD and self.max_receives() is not None:
            self._release(delivery, 0)  # the redrive policy moves it to the dead-letter queue
            return False
        if not delivery.managed:
            self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=delivery.token)
        return True

    def _last_receive(self, delivery: Delivery) -> bool:
        limit = self.max_receives()
        return limit is not None and delivery.receives is not None and delivery.receives >= limit

    def _write_outcome(self, outcome: Outcome, now: float) -> None:
        delivery, state = outcome.delivery, outcome.state
        values = {
            ":s": _s(state.value),
            ":e": _s(outcome.error),
            ":r": _s(outcome.result),
            ":t": _n(now if state.is_final else (outcome.run_at or now)),
            ":succeeded": _s(TaskState.SUCCEEDED.value),
        }
        sets = [
            "#s = :s",
            "#e = :e",
            "#r = :r",
            "finished_at = :t" if state.is_final else "run_at = :t",
        ]
        if state.is_final:  # DynamoDB's TTL deletes the record once its status has been kept
            sets.append("expires_at = :x")
            values[":x"] = _n(int(now) + self.keep_seconds)
        if not outcome.counted:
            sets.append("attempts = attempts - :one")
            values[":one"] = _n(1)
        update = f"SET {', '.join(sets)} REMOVE lease_until"
        if state is TaskState.SUCCEEDED:
            # It ran and succeeded: true whichever attempt holds the lease now.
            condition = "attribute_not_exists(#s) OR #s <> :succeeded"
        else:
            # Only the attempt holding the lease decides; a superseded one's verdict is stale.
            condition = "#l = :lease AND #s <> :succeeded"
            values[":lease"] = _s(delivery.lease)
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"id": _s(delivery.id or "")},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={
                    k: _NAMES[k] for k in ("#s", "#e", "#r", "#l") if k in condition + update
                },
                ExpressionAttributeValues=values,
            )
        except self._conflict:
            logger.info("task %s: outcome of a superseded attempt dropped", delivery.id)

    def _release(self, delivery: Delivery, delay: float) -> None:
        self._sqs.change_message_visibility(
            QueueUrl=self.queue_url,
            ReceiptHandle=delivery.token,
            VisibilityTimeout=max(0, min(math.ceil(delay), MAX_VISIBILITY)),
        )

    def max_receives(self) -> int | None:
        """The redrive policy's `maxReceiveCount`, or None without a redrive policy."""
        redrive = self._redrive_policy()
        return None if redrive is None else redrive.max_receives

    def _redrive_policy(self) -> _Redrive | None:
        if self._redrive is _UNKNOWN:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"]
            ).get("Attributes", {})
            self._redrive = _Redrive.parse(attributes.get("RedrivePolicy"))
        return self._redrive if isinstance(self._redrive, _Redrive) else None

    def _in_parallel(self, calls: Sequence[Callable[[], Any]], default: Any = None) -> list[Any]:
        """Run independent AWS calls at once (boto3 clients are thread-safe)."""
        return self._calls.run(calls, default)

    def maintain(self) -> None:
        """Every `reconcile_every` seconds, mark `dead` the tasks whose message the redrive
        policy moved to the dead-letter queue while their status says otherwise.

        That happens when a message's last allowed receive went to a worker that died before
        recording the attempt (killed in a long poll, say): nothing else would ever tell.
        (SQS redelivers everything else by itself once a visibility timeout lapses.)
        """
        redrive = self._redrive_policy()
        if redrive is None or time.monotonic() < self._last_reconcile + self.reconcile_every:
            return
        self._last_reconcile = time.monotonic()
        if self._dead_letter_url is None:
            self._dead_letter_url = self._sqs.get_queue_url(**redrive.target())["QueueUrl"]
        self._reconcile(self._dead_letter_url, redrive)

    def _reconcile(self, dead_letter_url: str, redrive: _Redrive) -> None:
        seen: list[dict[str, Any]] = []
        try:
            # Hide what was looked at so the next receive returns other messages; put it all
            # back at once afterwards. The DLQ's consumers see nothing missing for long.
            for _ in range(RECONCILE_ROUNDS):
                batch = self._sqs.receive_message(
                    QueueUrl=dead_letter_url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=30,
                    WaitTimeSeconds=0,
                ).get("Messages", [])
                seen += batch
                if len(batch) < 10:
                    break
            marks = [
                functools.partial(self._mark_dead_lettered, message["Body"], redrive)
                for message in seen
            ]
            self._in_parallel(marks)
        finally:
            for start in range(0, len(seen), 10):
                self._sqs.change_message_visibility_batch(
                    QueueUrl=dead_letter_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                        for i, m in enumerate(seen[start : start + 10])
                    ],
                )

    def _mark_dead_lettered(self, body: str, redrive: _Redrive) -> None:
        try:
            message = _parse_body(body)
        except ValueError:
            return  # not ours
        if message.get("queue") != self.queue:
            return
        error = (
            "DeadLettered: the redrive policy moved the message to the dead-letter queue"
            f" after {redrive.max_receives} receives"
        )
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"id": _s(message["id"])},
                UpdateExpression=(
                    "SET #s = :dead, #e = :e, finished_at = :now, expires_at = :x"
                    " REMOVE lease_until"
                ),
                ConditionExpression="#s IN (:queued, :retrying, :running)",
                ExpressionAttributeNames={"#s": "state", "#e": "error"},
                ExpressionAttributeValues={
                    ":dead": _s(TaskState.DEAD.value),
                    ":e": _s(error),
                    ":now": _n(time.time()),
                    ":x": _n(int(time.time()) + self.keep_seconds),
                    ":queued": _s(TaskState.QUEUED.value),
                    ":retrying": _s(TaskState.RETRYING.value),
                    ":running": _s(TaskState.RUNNING.value),
                },
            )
        except self._conflict:
            return  # final already (or no such task): the status is true
        logger.warning("task %s: %s", message["id"], error)

    def claim_slot(self, name: str, slot: float) -> bool:
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"id": _s(f"periodic#{self.queue}#{name}")},
                UpdateExpression="SET slot = :slot, #k = :kind",
                ConditionExpression="attribute_not_exists(slot) OR slot < :slot",
                ExpressionAttributeNames={"#k": "kind"},
                ExpressionAttributeValues={":slot": _n(slot), ":kind": _s("periodic")},
            )
        except self._conflict:
            return False
        return True

    # -- status -----------------------------------------------------------------------------

    def _item(self, key: dict[str, Any]) -> dict[str, Any] | None:
        found = self._ddb.get_item(TableName=self.table, Key={"id": key}, ConsistentRead=True)
        item: dict[str, Any] | None = found.get("Item")
        return item

    def get(self, task_id: str) -> TaskStatus | None:
        found = self._item(_s(task_id))
        if not found or _plain(found.get("kind")) != "task":
            return None
        if _plain(found.get("queue")) != self.queue:
            return None
        return _status(found, time.time())

    def list(
        self, *, state: TaskState | None = None, task: str | None = None, limit: int = 50
    ) -> list[TaskStatus]:
        conditions = ["#k = :task_kind", "#q = :queue"]
        values: dict[str, Any] = {":task_kind": _s("task"), ":queue": _s(self.queue)}
        names = {"#k": "kind", "#q": "queue"}
        if task is not None:
            conditions.append("#t = :task")
            values[":task"], names["#t"] = _s(task), "task"
        paginator = self._ddb.get_paginator("scan")
        items = []
        for page in paginator.paginate(
            TableName=self.table,
            FilterExpression=" AND ".join(conditions),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        ):
            items.extend(page.get("Items", []))
        now = time.time()
        # The state is filtered here, not in the scan: a lapsed lease changes it on reading.
        statuses = [_status(item, now) for item in items]
        statuses = [s for s in statuses if state is None or s.state is state]
        statuses.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        return statuses[:limit]


_UNKNOWN = object()
#: A lease lapsed by less than this is not yet taken for a lost worker (clock skew, a renewal
#: on its way).
LEASE_GRACE = 2.0


#: How often a worker's maintenance looks into the dead-letter queue, and how many batches
#: of 10 messages it reads each time.
RECONCILE_EVERY = 5.0
RECONCILE_ROUNDS = 10


@dataclasses.dataclass(frozen=True, slots=True)
class _Redrive:
    """A queue's redrive policy: the receive limit and the dead-letter queue's ARN."""

    max_receives: int
    target_arn: str

    @classmethod
    def parse(cls, policy: str | None) -> _Redrive | None:
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


def _no_retry(outcome: Outcome, delivery: Delivery) -> str:
    return (
        f"{outcome.error}; no retry: the message was received {delivery.receives} times,"
        " the redrive policy's maxReceiveCount"
    )


def _parse_body(body: str) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not JSON ({describe(exc)})") from None
    if not isinstance(message, dict) or message.get("holdfast") != 1:
        raise ValueError("not a holdfast task message")
    if not isinstance(message.get("id"), str) or not isinstance(message.get("task"), str):
        raise ValueError("id and task must be strings")
    if not isinstance(message.get("args"), list) or not isinstance(message.get("kwargs"), dict):
        raise ValueError("args must be a list and kwargs an object")
    return message


def _status(item: dict[str, Any], now: float) -> TaskStatus:
    status = TaskStatus.from_row(
        id=str(_plain(item["id"])),
        queue=_plain(item.get("queue")),
        task=_plain(item.get("task")),
        state=_plain(item.get("state")) or TaskState.QUEUED.value,
        attempts=_plain(item.get("attempts")) or 0,
        result=_plain(item.get("result")),
        error=_plain(item.get("error")),
        created_at=_plain(item.get("created_at")) or 0.0,
        started_at=_plain(item.get("started_at")),
        finished_at=_plain(item.get("finished_at")),
        run_at=_plain(item.get("run_at")),
    )
    if status.state is not TaskState.RUNNING:
        return status
    until = _plain(item.get("lease_until"))
    if not isinstance(until, float) or now < until + LEASE_GRACE:
        return status
    # Nothing renews the lease: the attempt's worker is gone and SQS has the message again.
    receives, limit = _plain(item.get("receives")), _plain(item.get("max_receives"))
    lost = f"WorkerLost: the lease of attempt {status.attempts} expired"
    if isinstance(receives, float) and isinstance(limit, float) and receives >= limit:
        error = f"{lost} on the message's last allowed receive (the redrive policy's limit)"
        return dataclasses.replace(status, state=TaskState.DEAD, error=error)
    return dataclasses.replace(status, state=TaskState.RETRYING, error=lost)


def create_table(table: str, *, endpoint_url: str | None = None, region: str | None = None) -> None:
    """Create the status table (partition key `id`, on-demand billing) if it does not exist."""
    import boto3

    client = boto3.client("dynamodb", region_name=region, endpoint_url=endpoint_url)
    try:
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except client.exceptions.ResourceInUseException:
        return
    client.get_waiter("table_exists").wait(TableName=table)
