"""The DynamoDB status table of the SQS backend: one item per task, plus idempotency keys
and periodic-task slots.

Workers and Lambda invocations die at any instant, so every write here is conditional and
idempotent (see the SQS backend's module docstring for the rules). The table needs one string
partition key, `id`; `create_table` makes one. Listing scans it (fine for a dev or moderate
table; add a GSI for large ones).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any

from ..errors import BackendError
from ..models import PENDING_STATES, Delivery, Job, Settlement, TaskState, TaskStatus

logger = logging.getLogger("holdfast.tasks")

#: A finished task's status is kept a week before DynamoDB's TTL may delete it.
DEFAULT_KEEP_SECONDS = 7 * 24 * 3600
#: A lease lapsed by less than this is not yet taken for a lost worker (clock skew, a renewal
#: on its way).
LEASE_GRACE = 2.0

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


class StatusTable:
    """One holdfast queue's items in a DynamoDB table."""

    def __init__(
        self,
        table: str,
        *,
        queue: str,
        client_options: dict[str, Any],
        keep_seconds: int = DEFAULT_KEEP_SECONDS,
    ) -> None:
        self.table = table
        self.queue = queue
        #: How long a finished task's status stays readable: its `expires_at` (epoch seconds,
        #: the table's TTL attribute) is set this far past the moment it finished.
        self.keep_seconds = max(0, int(keep_seconds))
        self._client_options = client_options

    # boto3 is imported and the client made on first use (a Lambda cold start that serves
    # requests without deferring anything does not pay for it).
    @functools.cached_property
    def client(self) -> Any:
        import boto3  # type: ignore[import-untyped]

        return boto3.client("dynamodb", **self._client_options)

    @property
    def _conflict(self) -> type[Exception]:
        conflict: type[Exception] = self.client.exceptions.ConditionalCheckFailedException
        return conflict

    def close(self) -> None:
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()

    # -- producing --------------------------------------------------------------------------

    def add_queued(self, task_id: str, job: Job) -> None:
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
        self.client.put_item(TableName=self.table, Item=item)

    def add_running(self, task_id: str, job: Job, lease: str, until: float) -> None:
        """A write-ahead (`SQSBackend.hold`): the caller's first attempt, running under
        `lease` until `until` (read as lost once that lapses, as any attempt's)."""
        now = time.time()
        item = {
            "id": _s(task_id),
            "kind": _s("task"),
            "queue": _s(self.queue),
            "task": _s(job.task),
            "state": _s(TaskState.RUNNING.value),
            "attempts": _n(1),
            "created_at": _n(job.created_at),
            "run_at": _n(job.run_at),
            "started_at": _n(now),
            "lease": _s(lease),
            "lease_until": _n(until),
        }
        self.client.put_item(TableName=self.table, Item=item)

    def remove(self, task_id: str) -> None:
        self.client.delete_item(TableName=self.table, Key={"id": _s(task_id)})

    def own_key(self, key: str, task_id: str) -> str | None:
        """Point the idempotency key at `task_id`; returns the pending task that owns it."""
        key_id = _s(f"idempotency#{self.queue}#{key}")
        condition, values = "attribute_not_exists(id)", dict[str, Any]()
        for _ in range(5):
            try:
                self.client.put_item(
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

    # -- attempts ---------------------------------------------------------------------------

    def start_attempt(
        self, delivery: Delivery, lease: float, max_receives: int | None
    ) -> int | None:
        """Record `delivery` as the running attempt; its attempt number, or None when the
        task may not start (final already)."""
        now = time.time()
        values = {
            ":running": _s("running"),
            ":queued": _s("queued"),
            ":retrying": _s("retrying"),
            ":now": _n(now),
            ":task_kind": _s("task"),
            ":queue": _s(self.queue),
            ":task": _s(delivery.task),
            ":one": _n(1),
            ":lease": _s(delivery.lease),
            ":until": _n(now + lease),
        }
        receives = ""
        if delivery.receives is not None:
            receives = ", receives = :receives"
            values[":receives"] = _n(delivery.receives)
        if max_receives is not None:
            receives += ", max_receives = :max_receives"
            values[":max_receives"] = _n(max_receives)
        try:
            attributes = self.client.update_item(
                TableName=self.table,
                Key={"id": _s(delivery.id)},
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
            return None
        return int(_plain(attributes["attempts"]))

    def extend_lease(self, delivery: Delivery, until: float) -> None:
        """The table's copy of the lease, so a reader can tell a long task from a lost worker."""
        if delivery.id is None or delivery.lease is None:
            return
        try:
            self.client.update_item(
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

    def write_settlement(self, settlement: Settlement, now: float) -> None:
        delivery, state = settlement.delivery, settlement.state
        values = {
            ":s": _s(state.value),
            ":e": _s(settlement.error),
            ":r": _s(settlement.result),
            ":t": _n(now if state.is_final else (settlement.run_at or now)),
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
        if not settlement.counted:
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
            self.client.update_item(
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
            logger.info("task %s: settlement of a superseded attempt dropped", delivery.id)

    def mark_dead(self, task_id: str, error: str) -> bool:
        """Make a pending task `dead`; False when it was final already (or unknown)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"id": _s(task_id)},
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
            return False
        return True

    # -- periodic tasks ---------------------------------------------------------------------

    def claim_slot(self, name: str, slot: float) -> bool:
        """Own a periodic task's schedule slot; False if someone already did."""
        try:
            self.client.update_item(
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
        found = self.client.get_item(TableName=self.table, Key={"id": key}, ConsistentRead=True)
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
        paginator = self.client.get_paginator("scan")
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
