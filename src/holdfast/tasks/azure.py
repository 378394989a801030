"""The Azure backend: Queue Storage delivers tasks, a Table Storage table keeps their status.

URL: `azure://<storage-queue>?table=<table>[&connection=<ENV>][&max_dequeue=5][&wait=5]`.
The connection string is read from the environment variable `connection` names
(`AzureWebJobsStorage` by default, the app setting a Function App already has), never from the
URL. Both live in the same storage account, which a Function App needs anyway: no other
service to provision, and the status API reads one partition per holdfast queue.

Messages are JSON (`{"holdfast": 1, "queue", "task", "id", "args", "kwargs", "run_at"}`),
base64-encoded as the Functions queue trigger expects by default. Azure's limits and how they
map onto the task queue:

* **64 KiB per message** (after base64: 48 KiB of JSON). Larger arguments go into the task's
  status entity (split over properties of at most 32 K characters, Table Storage's limit) and
  the message carries a reference; an entity holds at most 1 MiB, so arguments beyond
  ~900 KB are refused before anything is stored (`InvalidArguments`).
* **Visibility timeout ↔ lease.** A received message is invisible for the lease; running
  tasks renew it (`update_message`, which hands out a new pop receipt). A retry is a new copy
  of the message, sent invisible for the backoff delay, then the received one is deleted: the
  message's dequeue count then counts only deliveries that ended with no outcome (crashes).
* **Poison queue ↔ dead letters.** A dead task's message is copied to `<queue>-poison`, the
  queue the Functions runtime moves a message to after `maxDequeueCount` (5) failed
  deliveries. A worker does the same for a message dequeued more than `max_dequeue` times; the
  trigger's own moves (the function raised that often) are found by `maintain()`, which peeks
  at the poison queue and marks those tasks `dead`.
* **Queue-trigger deliveries** (`managed`): the Functions host owns the message (renews its
  visibility while the function runs and deletes it when the function returns), so only the
  status lease is renewed here and a retry or dead letter is a copy; the function returns
  normally so the host deletes the original.

Status writes are conditional on the entity's ETag (optimistic concurrency), with the same
rules as the SQS backend: an attempt starts by recording a fresh lease id; only the attempt
holding the lease writes a failure; a success always wins over anything but a success; a
`running` status whose lease lapsed reads as `retrying` (WorkerLost), or `dead` on the last
allowed dequeue. Table Storage has no TTL: finished statuses stay until deleted.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

from .backend import Listeners, ParallelCalls
from .errors import BackendError, InvalidArguments
from .message import TASK_ID, dumps, message_body, parse_message, without_arguments
from .models import PENDING_STATES, Delivery, Job, Settlement, TaskState, TaskStatus, new_task_id

logger = logging.getLogger("holdfast.tasks")

#: Queue Storage: 64 KiB per message (base64-encoded, so 48 KiB of JSON), a visibility
#: timeout of at most 7 days, at most 32 messages per receive.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_JSON_BYTES = MAX_MESSAGE_BYTES // 4 * 3
MAX_VISIBILITY = 7 * 24 * 3600
MAX_RECEIVE = 32
#: Table Storage: a string property holds 64 KiB (32 K UTF-16 characters); an entity 1 MiB.
PROPERTY_CHARS = 30_000
MAX_SPILLED_CHARS = 900_000
#: The Functions queue trigger's default `maxDequeueCount`.
DEFAULT_MAX_DEQUEUE = 5
DEFAULT_CONNECTION = "AzureWebJobsStorage"
#: A lease lapsed by less than this is not yet taken for a lost worker.
LEASE_GRACE = 2.0
#: How often `maintain()` peeks at the poison queue.
RECONCILE_EVERY = 5.0

_STARTABLE = frozenset({TaskState.QUEUED.value, TaskState.RETRYING.value, TaskState.RUNNING.value})


class _Stale(Exception):
    """The entity changed between reading and writing it: read again."""


class AzureBackend:
    """One holdfast queue on one Azure Storage queue plus a status table."""

    blocking = True

    def __init__(
        self,
        queue_name: str,
        table: str,
        *,
        queue: str = "default",
        connection_string: str,
        max_dequeue: int = DEFAULT_MAX_DEQUEUE,
        wait_seconds: float = 5.0,
        poison_queue: str | None = None,
    ) -> None:
        if importlib.util.find_spec("azure.storage.queue") is None:  # pragma: no cover
            raise BackendError(
                "the Azure backend needs azure-storage-queue and azure-data-tables:"
                " pip install 'holdfast[azure]'"
            )
        self.queue_name = queue_name
        self.poison_queue_name = poison_queue or f"{queue_name}-poison"
        self.table_name = table
        self.queue = queue
        self.max_dequeue = max(1, int(max_dequeue))
        self.wait_seconds = max(0.0, float(wait_seconds))
        self._connection = connection_string
        self._listeners = Listeners()
        self._wake = threading.Event()
        self._last_reconcile = -math.inf
        self._corrupt: dict[str, str] = {}
        self.reconcile_every = RECONCILE_EVERY
        self._calls = ParallelCalls(16, "holdfast-azure")

    @classmethod
    def from_url(cls, rest: str, *, queue: str) -> AzureBackend:
        """From the part of `azure://<queue>?table=T[&connection=ENV][&max_dequeue=N][&wait=S]
        [&poison=<queue>]` after the scheme."""
        name, _, query = rest.partition("?")
        options = {key: values[-1] for key, values in parse_qs(query).items()}
        if not name or "table" not in options:
            raise BackendError("azure:// URLs are azure://<storage-queue>?table=<status-table>")
        variable = options.get("connection", DEFAULT_CONNECTION)
        connection = os.environ.get(variable)
        if not connection:
            raise BackendError(
                f"azure:// task queue: set {variable} to the storage account's connection string"
            )
        return cls(
            name.strip("/"),
            options["table"],
            queue=queue,
            connection_string=connection,
            max_dequeue=int(options.get("max_dequeue", DEFAULT_MAX_DEQUEUE)),
            wait_seconds=float(options.get("wait", 5)),
            poison_queue=options.get("poison"),
        )

    # The SDK is imported and its clients made on first use (a cold start that defers
    # nothing does not pay for them).
    def _queue_client(self, name: str) -> Any:
        from azure.storage.queue import (
            QueueClient,
            TextBase64DecodePolicy,
            TextBase64EncodePolicy,
        )

        return QueueClient.from_connection_string(
            self._connection,
            name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )

    @functools.cached_property
    def _queue(self) -> Any:
        return self._queue_client(self.queue_name)

    @functools.cached_property
    def _poison(self) -> Any:
        return self._queue_client(self.poison_queue_name)

    @functools.cached_property
    def _table(self) -> Any:
        from azure.data.tables import TableClient

        return TableClient.from_connection_string(self._connection, self.table_name)

    def create(self) -> None:
        """Create the queue, the poison queue and the table if they do not exist."""
        from azure.core.exceptions import ResourceExistsError

        for client in (self._queue, self._poison):
            try:
                client.create_queue()
            except ResourceExistsError:
                pass
        try:
            self._table.create_table()
        except ResourceExistsError:
            pass

    def close(self) -> None:
        self._calls.close()
        for name in ("_queue", "_poison", "_table"):
            client = self.__dict__.pop(name, None)
            if client is not None:
                client.close()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self._listeners.subscribe(callback)

    # -- producing --------------------------------------------------------------------------

    def hold(self, job: Job, lease: float) -> tuple[str, Delivery | None]:
        """Not supported: a retry here is a new copy of the message, so the write-ahead's own
        delayed message would deliver a second one (durable after-response work needs the
        delivery to stay one message, as on SQLite and SQS)."""
        raise BackendError(
            "durable after-response work (after_response(..., durable=True)) is not supported"
            " on azure:// task queues; use defer() instead"
        )

    def enqueue(self, job: Job) -> tuple[str, bool]:
        task_id = new_task_id()
        body = message_body(self.queue, job.task, task_id, job.args, job.kwargs, job.run_at)
        text = dumps(body)
        entity: dict[str, Any] = {
            "PartitionKey": self.queue,
            "RowKey": task_id,
            "kind": "task",
            "task": job.task,
            "state": TaskState.QUEUED.value,
            "attempts": 0,
            "created_at": job.created_at,
            "run_at": job.run_at,
        }
        if len(text.encode()) > MAX_JSON_BYTES:
            # Too large for a message: the arguments ride in the status entity.
            arguments = json.dumps([job.args, job.kwargs], separators=(",", ":"))
            if len(arguments) > MAX_SPILLED_CHARS:
                raise InvalidArguments(
                    f"the task's arguments are {len(arguments)} characters of JSON; Azure Queue"
                    f" Storage messages take {MAX_JSON_BYTES} bytes and holdfast keeps at most"
                    f" {MAX_SPILLED_CHARS} in Table Storage (pass a reference to large data)"
                )
            entity.update(_split("payload", arguments))
            text = dumps(without_arguments(body))
        # The status entity goes first: a worker that receives the message finds it.
        self._table.create_entity(entity)
        if job.idempotency_key is not None:
            existing = self._own_key(job.idempotency_key, task_id)
            if existing is not None:
                self._table.delete_entity(self.queue, task_id)
                return existing, False
        try:
            self._send(text, job.run_at - time.time())
        except Exception:
            self._table.delete_entity(self.queue, task_id)
            raise
        self._listeners.notify()
        self._wake.set()
        return task_id, True

    def _send(self, text: str, delay: float, *, poison: bool = False) -> None:
        client = self._poison if poison else self._queue
        visibility = max(0, min(MAX_VISIBILITY - 1, math.ceil(delay)))
        # -1: messages live until consumed (the default TTL is 7 days).
        client.send_message(text, visibility_timeout=visibility or None, time_to_live=-1)

    def _own_key(self, key: str, task_id: str) -> str | None:
        """Point the idempotency key at `task_id`; returns the pending task that owns it."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        partition = f"{self.queue}~idempotency"
        row = hashlib.sha256(key.encode()).hexdigest()
        for _ in range(5):
            try:
                self._table.create_entity(
                    {"PartitionKey": partition, "RowKey": row, "task_id": task_id}
                )
                return None
            except ResourceExistsError:
                pass
            found = self._entity(partition, row)
            if found is None:
                continue
            owner = found.get("task_id")
            status = self.get(owner) if isinstance(owner, str) else None
            if isinstance(owner, str) and (status is None or status.state in PENDING_STATES):
                return owner
            try:
                self._table.update_entity(
                    {"PartitionKey": partition, "RowKey": row, "task_id": task_id},
                    mode=UpdateMode.REPLACE,
                    etag=found.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return None
            except ResourceModifiedError:
                continue
        raise BackendError(f"idempotency key {key!r} is contended")

    # -- consuming --------------------------------------------------------------------------

    def claim(self, limit: int, lease: float) -> list[Delivery]:
        # Queue Storage has no long polling: poll, more slowly the longer the queue stays
        # empty, until `wait_seconds` pass or an enqueue in this process wakes us.
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.05
        while True:
            messages = list(
                self._queue.receive_messages(
                    messages_per_page=max(1, min(limit, MAX_RECEIVE)),
                    max_messages=max(1, min(limit, MAX_RECEIVE)),
                    visibility_timeout=max(1, min(math.ceil(lease), MAX_VISIBILITY)),
                )
            )
            if messages or time.monotonic() >= deadline:
                break
            self._wake.wait(min(pause, max(0.0, deadline - time.monotonic())))
            self._wake.clear()
            pause = min(pause * 2, 1.0)
        accepts = [
            functools.partial(
                self.accept,
                message.content,
                message.pop_receipt,
                message.id,
                lease=lease,
                dequeue_count=message.dequeue_count,
            )
            for message in messages
        ]
        # A message that could not be started comes back when its visibility lapses.
        return [d for d in self._in_parallel(accepts) if d is not None]

    def settle_and_claim(
        self, settlements: Sequence[Settlement], limit: int, lease: float
    ) -> list[Delivery]:
        self.settle(settlements)
        return self.claim(limit, lease) if limit else []

    def accept(
        self,
        body: str,
        pop_receipt: str,
        message_id: str,
        *,
        managed: bool = False,
        lease: float = 30.0,
        dequeue_count: int | None = None,
    ) -> Delivery:
        """A delivery for one received message; `managed`: the Functions host owns it."""
        try:
            message = parse_message(body, stored_arguments=True)
            if message.get("payload") == "entity":
                message["args"], message["kwargs"] = self._spilled_arguments(message["id"])
        except ValueError as exc:
            logger.error("message %s is not a holdfast task: %s", message_id, exc)
            self._corrupt[message_id] = body  # copied as it is to the poison queue
            return Delivery(
                None,
                "",
                [],
                {},
                0,
                pop_receipt,
                f"corrupt message body: {exc}",
                message_id=message_id,
                managed=managed,
                receives=dequeue_count,
            )
        delivery = Delivery(
            message["id"],
            message["task"],
            message["args"],
            message["kwargs"],
            0,
            pop_receipt,
            message_id=message_id,
            managed=managed,
            lease=secrets.token_hex(8),
            receives=dequeue_count,
        )
        run_at = message.get("run_at")
        if isinstance(run_at, (int, float)) and run_at > time.time() + 1:
            delivery.not_before = float(run_at)  # delayed beyond what a visibility timeout holds
            return delivery
        self._start(delivery, lease)  # also for the last delivery: its lease writes `dead`
        over = dequeue_count is not None and dequeue_count > self.max_dequeue
        if over and delivery.settled is None:
            delivery.error = (
                f"DeadLettered: the message was dequeued {dequeue_count} times without an"
                f" outcome (max_dequeue {self.max_dequeue})"
            )
        return delivery

    def _spilled_arguments(self, task_id: str) -> tuple[list[Any], dict[str, Any]]:
        found = self._entity(self.queue, task_id) if TASK_ID.fullmatch(task_id) else None
        text = _joined(found or {}, "payload")
        if text is None:
            raise ValueError("its arguments are missing from the status entity")
        arguments = json.loads(text)
        if not isinstance(arguments, list) or len(arguments) != 2:
            raise ValueError("its stored arguments are not [args, kwargs]")
        args, kwargs = arguments
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("args must be a list and kwargs an object")
        return args, kwargs

    def _start(self, delivery: Delivery, lease: float) -> None:
        """Record the attempt (fresh lease id), or mark the delivery settled if it is final."""
        task_id = delivery.id or ""

        def change(entity: dict[str, Any] | None) -> dict[str, Any] | None:
            state = (entity or {}).get("state", TaskState.QUEUED.value)
            if entity is not None and state not in _STARTABLE:
                delivery.settled = _state(state)
                return None
            now = time.time()
            attempts = int((entity or {}).get("attempts") or 0) + 1
            delivery.attempt = attempts
            update = {
                "state": TaskState.RUNNING.value,
                "started_at": now,
                "lease": delivery.lease,
                "lease_until": now + lease,
                "attempts": attempts,
            }
            if delivery.receives is not None:
                update["receives"] = delivery.receives
                update["max_receives"] = self.max_dequeue
            if entity is None:  # its status entity is gone (deleted by hand): recreate it
                update.update(kind="task", task=delivery.task, created_at=now, run_at=now)
            return update

        self._change(task_id, change)

    def _change(
        self, task_id: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> bool:
        """Apply `change(entity)` (a merge, or None for no write) under ETag concurrency."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        for _ in range(20):
            entity = self._entity(self.queue, task_id)
            update = change(entity)
            if update is None:
                return False
            try:
                if entity is None:
                    self._table.create_entity(
                        {"PartitionKey": self.queue, "RowKey": task_id, **update}
                    )
                else:
                    self._table.update_entity(
                        {"PartitionKey": self.queue, "RowKey": task_id, **update},
                        mode=UpdateMode.MERGE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                return True
            except (ResourceModifiedError, ResourceExistsError):
                continue
        raise BackendError(f"task {task_id}: its status entity is contended")

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        timeout = max(1, min(math.ceil(lease), MAX_VISIBILITY))
        until = time.time() + timeout
        self._in_parallel([functools.partial(self._extend, d, timeout, until) for d in deliveries])

    def _extend(self, delivery: Delivery, timeout: int, until: float) -> None:
        if not delivery.managed:  # the host renews the visibility of trigger messages itself
            updated = self._queue.update_message(
                delivery.message_id, delivery.token, visibility_timeout=timeout
            )
            delivery.token = updated.pop_receipt
        if delivery.id is None or delivery.lease is None:
            return

        def change(entity: dict[str, Any] | None) -> dict[str, Any] | None:
            if entity is None or entity.get("lease") != delivery.lease:
                return None  # superseded by another attempt: nothing to extend
            if entity.get("state") != TaskState.RUNNING.value:
                return None
            return {"lease_until": until}

        self._change(delivery.id, change)

    def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        # Statuses of a batch all at once: a crash loses at most one round trip of outcomes.
        return self._in_parallel(
            [functools.partial(self._settle, settlement) for settlement in settlements],
            default=False,
        )

    def _settle(self, settlement: Settlement) -> bool:
        delivery, now = settlement.delivery, time.time()
        state = settlement.state
        if settlement.write and delivery.id is not None:
            self._write_settlement(settlement, now)
        if state in (TaskState.QUEUED, TaskState.RETRYING):
            run_at = settlement.run_at or now
            self._send(self._message_text(delivery, run_at), run_at - now)
        elif state is TaskState.DEAD:
            corrupt = self._corrupt.pop(delivery.message_id or "", None)
            self._send(corrupt or self._message_text(delivery, now), 0, poison=True)
        if not delivery.managed:
            self._delete(delivery)
        return True

    def _message_text(self, delivery: Delivery, run_at: float) -> str:
        """The message of another delivery of the same task (a retry, a delay, a dead letter)."""
        body = message_body(
            self.queue, delivery.task, delivery.id, delivery.args, delivery.kwargs, run_at
        )
        text = dumps(body)
        if len(text.encode()) > MAX_JSON_BYTES:  # its arguments are in the status entity
            text = dumps(without_arguments(body))
        return text

    def _delete(self, delivery: Delivery) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._queue.delete_message(delivery.message_id, delivery.token)
        except ResourceNotFoundError:
            pass  # its visibility lapsed and another worker holds it now: its outcome decides

    def _write_settlement(self, settlement: Settlement, now: float) -> None:
        delivery, state = settlement.delivery, settlement.state

        def change(entity: dict[str, Any] | None) -> dict[str, Any] | None:
            current = (entity or {}).get("state")
            if current == TaskState.SUCCEEDED.value:
                return None  # a success is final whoever ran it
            if state is not TaskState.SUCCEEDED and (entity or {}).get("lease") != delivery.lease:
                logger.info("task %s: outcome of a superseded attempt dropped", delivery.id)
                return None
            update: dict[str, Any] = {
                "state": state.value,
                "error": settlement.error or "",
                "lease_until": 0.0,
                **_split("result", settlement.result or ""),
            }
            if state.is_final:
                update["finished_at"] = now
            else:
                update["run_at"] = settlement.run_at or now
            if not settlement.counted:
                update["attempts"] = max(0, int((entity or {}).get("attempts") or 0) - 1)
            if entity is None:
                update.update(kind="task", task=delivery.task, created_at=now)
            return update

        self._change(delivery.id or "", change)

    def maintain(self) -> None:
        """Every `reconcile_every` seconds, mark `dead` the tasks whose message is in the
        poison queue while their status says otherwise (the Functions host moved it there
        after `maxDequeueCount` failed deliveries). Peeks at the first 32 messages."""
        if time.monotonic() < self._last_reconcile + self.reconcile_every:
            return
        self._last_reconcile = time.monotonic()
        from azure.core.exceptions import ResourceNotFoundError

        try:
            peeked = list(self._poison.peek_messages(max_messages=MAX_RECEIVE))
        except ResourceNotFoundError:
            return
        self._in_parallel([functools.partial(self._mark_poisoned, m.content) for m in peeked])

    def _mark_poisoned(self, body: str) -> None:
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            return
        if not isinstance(message, dict) or message.get("queue") != self.queue:
            return
        task_id = message.get("id")
        if not isinstance(task_id, str) or not TASK_ID.fullmatch(task_id):
            return
        error = "DeadLettered: the message was moved to the poison queue"

        def change(entity: dict[str, Any] | None) -> dict[str, Any] | None:
            if entity is None or entity.get("state") not in _STARTABLE:
                return None
            return {"state": TaskState.DEAD.value, "error": error, "finished_at": time.time()}

        if self._change(task_id, change):
            logger.warning("task %s: %s", task_id, error)

    def claim_slot(self, name: str, slot: float) -> bool:
        row = hashlib.sha256(name.encode()).hexdigest()
        partition = f"{self.queue}~periodic"
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        found = self._entity(partition, row)
        try:
            if found is None:
                self._table.create_entity(
                    {"PartitionKey": partition, "RowKey": row, "slot": slot, "name": name}
                )
                return True
            if float(found.get("slot") or 0.0) >= slot:
                return False
            self._table.update_entity(
                {"PartitionKey": partition, "RowKey": row, "slot": slot},
                mode=UpdateMode.MERGE,
                etag=found.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceExistsError, ResourceModifiedError):
            return False
        return True

    def _in_parallel(self, calls: Sequence[Callable[[], Any]], default: Any = None) -> list[Any]:
        return self._calls.run(calls, default)

    # -- status -----------------------------------------------------------------------------

    def _entity(self, partition: str, row: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._table.get_entity(partition, row)
        except ResourceNotFoundError:
            return None

    def get(self, task_id: str) -> TaskStatus | None:
        if not TASK_ID.fullmatch(task_id):
            return None  # not an id holdfast made (and not a valid RowKey)
        found = self._entity(self.queue, task_id)
        if found is None or found.get("kind") != "task":
            return None
        return _status(found, time.time())

    def list(
        self, *, state: TaskState | None = None, task: str | None = None, limit: int = 50
    ) -> list[TaskStatus]:
        query = "PartitionKey eq @queue and kind eq 'task'"
        parameters = {"queue": self.queue}
        if task is not None:
            query += " and task eq @task"
            parameters["task"] = task
        now = time.time()
        # The state is filtered here, not in the query: a lapsed lease changes it on reading.
        statuses = [
            _status(entity, now)
            for entity in self._table.query_entities(query, parameters=parameters)
        ]
        statuses = [s for s in statuses if state is None or s.state is state]
        statuses.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        return statuses[:limit]


def _state(value: Any) -> TaskState:
    try:
        return TaskState(value)
    except ValueError:
        return TaskState.CORRUPT


def _split(name: str, text: str) -> dict[str, Any]:
    """`text` over properties `name`, `name_1`, ... of at most PROPERTY_CHARS characters."""
    parts = [text[i : i + PROPERTY_CHARS] for i in range(0, len(text), PROPERTY_CHARS)] or [""]
    fields: dict[str, Any] = {name: parts[0], f"{name}_parts": len(parts)}
    fields.update({f"{name}_{n}": part for n, part in enumerate(parts[1:], start=1)})
    return fields


def _joined(entity: Any, name: str) -> str | None:
    first = entity.get(name)
    if not isinstance(first, str):
        return None
    count = entity.get(f"{name}_parts")
    parts = [first]
    if isinstance(count, int):
        for n in range(1, count):
            part = entity.get(f"{name}_{n}")
            if not isinstance(part, str):
                return None
            parts.append(part)
    return "".join(parts)


def _status(entity: Any, now: float) -> TaskStatus:
    result = _joined(entity, "result")
    status = TaskStatus.from_row(
        id=str(entity["RowKey"]),
        queue=entity.get("PartitionKey"),
        task=entity.get("task"),
        state=entity.get("state") or TaskState.QUEUED.value,
        attempts=entity.get("attempts") or 0,
        result=result or None,
        error=entity.get("error") or None,
        created_at=entity.get("created_at") or 0.0,
        started_at=entity.get("started_at"),
        finished_at=entity.get("finished_at"),
        run_at=entity.get("run_at"),
    )
    if status.state is not TaskState.RUNNING:
        return status
    until = entity.get("lease_until")
    if not isinstance(until, float) or now < until + LEASE_GRACE:
        return status
    # Nothing renews the lease: the attempt's worker is gone and the message comes back.
    receives, limit = entity.get("receives"), entity.get("max_receives")
    lost = f"WorkerLost: the lease of attempt {status.attempts} expired"
    if isinstance(receives, int) and isinstance(limit, int) and receives >= limit:
        error = f"{lost} on the message's last allowed dequeue (max_dequeue {limit})"
        return dataclasses.replace(status, state=TaskState.DEAD, error=error)
    return dataclasses.replace(status, state=TaskState.RETRYING, error=lost)
