"""The embedded backend: one SQLite file, several workers and processes.

A task id is `<rowid>-<random token>`: lookups go straight to the row (no separate id index
to maintain on every insert) and the token keeps ids unguessable.

WAL mode lets readers (status pages) run beside the single writer. A claim is one
`UPDATE ... RETURNING` statement, so two workers can never take the same row; each claimed
row carries a lease token and a `lease_until` time that the worker keeps pushing forward.
When a worker dies its leases run out and `maintain()` makes the rows claimable again.

Rows are read defensively: the file may be edited by hand or by other software. A claimed row
whose payload cannot be decoded (not UTF-8, not JSON, nested too deep) becomes a `dead`
delivery with the reason; a queued row whose `run_at` is not a number can never be due, and
`maintain()` makes it `dead`; any other unreadable column is reported as state `corrupt`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from .backend import Listeners
from .codec import dump_payload, load_payload
from .errors import error_text
from .models import Delivery, Job, Settlement, TaskState, TaskStatus

logger = logging.getLogger("holdfast.tasks")

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS holdfast_tasks (
    seq INTEGER PRIMARY KEY,
    token INTEGER NOT NULL,
    queue TEXT NOT NULL,
    task TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at REAL NOT NULL,
    lease TEXT,
    lease_until REAL,
    idempotency_key TEXT,
    result TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS holdfast_tasks_due
    ON holdfast_tasks (queue, run_at) WHERE state IN ('queued', 'retrying');
CREATE INDEX IF NOT EXISTS holdfast_tasks_leased
    ON holdfast_tasks (queue, lease_until) WHERE state = 'running';
CREATE UNIQUE INDEX IF NOT EXISTS holdfast_tasks_idempotency
    ON holdfast_tasks (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state IN ('queued', 'running', 'retrying');
CREATE INDEX IF NOT EXISTS holdfast_tasks_failures
    ON holdfast_tasks (queue, state) WHERE state IN ('failed', 'dead');
CREATE TABLE IF NOT EXISTS holdfast_periodic (
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    slot REAL NOT NULL,
    PRIMARY KEY (queue, name)
);
"""

_INSERT = """
INSERT INTO holdfast_tasks
    (token, queue, task, payload, state, run_at, idempotency_key, created_at)
VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)
"""
# A write-ahead (`hold`): the row starts as the caller's running first attempt, leased.
_INSERT_HELD = """
INSERT INTO holdfast_tasks
    (token, queue, task, payload, state, run_at, idempotency_key, created_at,
     attempts, lease, lease_until, started_at)
VALUES (?, ?, ?, ?, 'running', ?, ?, ?, 1, ?, ?, ?)
"""
_FIND_PENDING_KEY = """
SELECT seq, token FROM holdfast_tasks
WHERE queue = ? AND idempotency_key = ? AND state IN ('queued', 'running', 'retrying')
"""
# A read-only probe first: an UPDATE takes the write lock even when it matches nothing.
_PROBE_DUE = """
SELECT 1 FROM holdfast_tasks
WHERE queue = ? AND state IN ('queued', 'retrying') AND run_at <= ? LIMIT 1
"""
_CLAIM = """
UPDATE holdfast_tasks
SET state = 'running', attempts = COALESCE(attempts, 0) + 1, lease = :lease,
    lease_until = :until, started_at = :now
WHERE seq IN (
    SELECT seq FROM holdfast_tasks
    WHERE queue = :queue AND state IN ('queued', 'retrying') AND run_at <= :now
    ORDER BY run_at LIMIT :limit
)
RETURNING seq, token, task, CAST(payload AS BLOB), attempts, run_at
"""
_SETTLE = """
UPDATE holdfast_tasks
SET state = ?, result = ?, error = ?, run_at = COALESCE(?, run_at), finished_at = ?,
    attempts = attempts - ?, lease = NULL, lease_until = NULL
WHERE seq = ? AND lease = ?
"""
_EXTEND = """
UPDATE holdfast_tasks SET lease_until = ? WHERE seq = ? AND lease = ? AND state = 'running'
"""
# In SQLite any text or blob sorts after every number, so `x >= ''` finds the values of a
# REAL column that are not numbers, through the same index as a range on the numbers.
_EXPIRED = """
queue = :queue AND state = 'running'
    AND (lease_until <= :now OR lease_until IS NULL OR lease_until >= '')
"""
_PROBE_EXPIRED = f"SELECT 1 FROM holdfast_tasks WHERE {_EXPIRED} LIMIT 1"
_RECOVER = f"""
UPDATE holdfast_tasks
SET state = 'retrying', run_at = :now, lease = NULL, lease_until = NULL,
    error = 'WorkerLost: the lease of attempt ' || attempts || ' expired'
WHERE {_EXPIRED}
"""
_NEVER_DUE = (
    "queue = :queue AND state IN ('queued', 'retrying') AND (run_at >= '' OR run_at IS NULL)"
)
_PROBE_NEVER_DUE = f"SELECT 1 FROM holdfast_tasks WHERE {_NEVER_DUE} LIMIT 1"
_BURY_NEVER_DUE = f"""
UPDATE holdfast_tasks
SET state = 'dead', finished_at = :now, lease = NULL, lease_until = NULL,
    error = 'CorruptRecord: run_at ' || substr(quote(run_at), 1, 60) || ' is not a time'
WHERE {_NEVER_DUE}
"""
_STATUS_COLUMNS = (
    "seq, token, queue, task, state, attempts, result, error, created_at, started_at,"
    " finished_at, run_at"
)
_GET = f"SELECT {_STATUS_COLUMNS} FROM holdfast_tasks WHERE seq = ? AND token = ? AND queue = ?"
_CLAIM_SLOT = """
INSERT INTO holdfast_periodic (queue, name, slot) VALUES (?, ?, ?)
ON CONFLICT (queue, name) DO UPDATE SET slot = excluded.slot
WHERE excluded.slot > holdfast_periodic.slot
"""

_AUTOCHECKPOINT_PAGES = 16384  # 16 MiB of WAL
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode & 0xFF in _BUSY_CODES


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced."""


class _PerThread(threading.local):
    """Each thread's connection, and the process that opened it (a fork needs its own)."""

    conn: sqlite3.Connection | None = None
    pid: int = 0


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so nothing inside can fail half-way on BUSY.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SQLiteBackend:
    """Tasks of one named queue in an SQLite database file (several queues may share it)."""

    blocking = False

    def __init__(
        self,
        path: str,
        *,
        queue: str = "default",
        synchronous: str = "NORMAL",
        busy_timeout: float = 5.0,
    ) -> None:
        if path in ("", ":memory:"):
            raise ValueError("SQLite tasks need a file (workers use their own connections)")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown SQLite synchronous level {synchronous!r}")
        self.path = os.path.abspath(path)
        self.queue = queue
        self._synchronous = synchronous.upper()
        self._busy_timeout = busy_timeout
        self._local = _PerThread()
        # Weak: a thread's connection closes with the thread; close() reaches the live ones.
        self._connections: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._schema_pid: int | None = None
        self._listeners = Listeners()
        self._leases = itertools.count()
        self._lease_prefix = secrets.token_hex(6)

    # -- connections ------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        if local.conn is not None and local.pid == os.getpid():
            return local.conn
        # timeout=0: busy waits are done by _run in small steps; SQLite's own handler first
        # sleeps a whole millisecond, which would dominate the cost of a claim.
        conn = sqlite3.connect(
            self.path,
            timeout=0,
            isolation_level=None,
            check_same_thread=False,
            factory=_Connection,
        )
        # Invalid UTF-8 in a text column would make the whole fetch raise: decode it with
        # replacement characters instead (payloads are read as bytes and checked strictly).
        conn.text_factory = _decode_text
        self._run_on(conn, self._prepare)
        local.conn, local.pid = conn, os.getpid()
        with self._lock:
            self._connections.add(conn)
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        # Statement journals (an UPDATE of many rows inside a transaction) go to a temporary
        # file by default: a file write per claim. They are small; keep them in memory.
        conn.execute("PRAGMA temp_store = MEMORY")
        # Each checkpoint syncs the files: with 1 KiB pages the default (1000 pages) would
        # checkpoint every few hundred tasks. Workers checkpoint in maintain() as well.
        conn.execute(f"PRAGMA wal_autocheckpoint = {_AUTOCHECKPOINT_PAGES}")
        if self._schema_pid != os.getpid():
            # Small pages: a commit appends whole pages to the WAL, and a task touches a few
            # rows of ~200 bytes; 1 KiB pages cut the bytes written per task about fourfold.
            # (Only takes effect when the file is new.)
            conn.execute("PRAGMA page_size = 1024")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            self._schema_pid = os.getpid()

    def _run(self, op: Callable[[sqlite3.Connection], _T]) -> _T:
        return self._run_on(self._conn(), op)

    def _run_on(self, conn: sqlite3.Connection, op: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `op`, retrying while another connection holds the write lock."""
        delay, deadline = 0.00002, None
        while True:
            try:
                return op(conn)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                now = time.monotonic()
                deadline = deadline or now + self._busy_timeout
                if now >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.001)

    def close(self) -> None:
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = _PerThread()

    # -- producing --------------------------------------------------------------------------

    def _row(self, job: Job) -> tuple[Any, ...]:
        """The values of `_INSERT` for `job` (a fresh token first)."""
        return (
            secrets.randbits(63),
            self.queue,
            job.task,
            dump_payload(job.args, job.kwargs),
            job.run_at,
            job.idempotency_key,
            job.created_at,
        )

    def enqueue(self, job: Job) -> tuple[str, bool]:
        params = self._row(job)
        if job.idempotency_key is None:
            seq = self._run(lambda conn: _inserted(conn.execute(_INSERT, params)))
            task_id, created = _task_id(seq, params[0]), True
        else:
            task_id, created = self._run(lambda conn: self._enqueue_once(conn, params))
        if created:
            self._listeners.notify()
        return task_id, created

    def _enqueue_once(self, conn: sqlite3.Connection, params: tuple[Any, ...]) -> tuple[str, bool]:
        with _transaction(conn):
            row = conn.execute(_FIND_PENDING_KEY, (self.queue, params[5])).fetchone()
            if row is not None:
                return _task_id(*row), False
            seq = _inserted(conn.execute(_INSERT, params))
        return _task_id(seq, params[0]), True

    def hold(self, job: Job, lease: float) -> tuple[str, Delivery | None]:
        now = time.time()
        lease_id = f"{self._lease_prefix}-{next(self._leases)}"
        params = (*self._row(job), lease_id, now + lease, now)

        def op(conn: sqlite3.Connection) -> tuple[str, bool]:
            if job.idempotency_key is None:
                return _task_id(_inserted(conn.execute(_INSERT_HELD, params)), params[0]), True
            with _transaction(conn):
                row = conn.execute(_FIND_PENDING_KEY, (self.queue, job.idempotency_key)).fetchone()
                if row is not None:
                    return _task_id(*row), False
                return _task_id(_inserted(conn.execute(_INSERT_HELD, params)), params[0]), True

        task_id, created = self._run(op)
        if not created:
            return task_id, None
        seq = int(task_id.partition("-")[0])
        return task_id, Delivery(task_id, job.task, job.args, job.kwargs, 1, (seq, lease_id))

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self._listeners.subscribe(callback)

    # -- consuming --------------------------------------------------------------------------

    def claim(self, limit: int, lease: float) -> list[Delivery]:
        return self.settle_and_claim((), limit, lease)

    def settle_and_claim(
        self, settlements: Sequence[Settlement], limit: int, lease: float
    ) -> list[Delivery]:
        """`settle(settlements)` then `claim(limit, lease)`, in one transaction (one commit)."""
        now = time.time()
        lease_id = f"{self._lease_prefix}-{next(self._leases)}"
        params = {"queue": self.queue, "now": now, "until": now + lease, "lease": lease_id}
        params["limit"] = limit
        rows = _settle_rows(settlements, now)

        def op(conn: sqlite3.Connection) -> tuple[int, list[Any]]:
            if rows:
                with _transaction(conn):
                    changed = conn.executemany(_SETTLE, rows).rowcount
                    return changed, conn.execute(_CLAIM, params).fetchall() if limit else []
            if limit and conn.execute(_PROBE_DUE, (self.queue, now)).fetchone() is not None:
                return 0, conn.execute(_CLAIM, params).fetchall()
            return 0, []

        changed, claimed = self._run(op)
        _warn_lost(len(rows) - changed)
        claimed.sort(key=lambda row: row[5])  # RETURNING order is unspecified; keep FIFO
        return [_delivery(row, lease_id) for row in claimed]

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        until = time.time() + lease
        rows = [(until, *d.token) for d in deliveries]
        if rows:
            self._run(lambda conn: _in_transaction(conn, _EXTEND, rows))

    def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        self.settle_and_claim(settlements, 0, 0.0)
        return [True] * len(settlements)

    def maintain(self) -> None:
        self._recover()
        self._bury_never_due()
        # Checkpoint here, off the producers' path: otherwise the commit that crosses the
        # autocheckpoint threshold pays for it, often a web request's defer.
        self._run(lambda conn: conn.execute("PRAGMA wal_checkpoint(PASSIVE)"))

    def _recover(self) -> None:
        recovered = self._update_if_any(_PROBE_EXPIRED, _RECOVER)
        if recovered:
            logger.warning("%d task(s) re-queued: their worker stopped renewing", recovered)

    def _bury_never_due(self) -> None:
        buried = self._update_if_any(_PROBE_NEVER_DUE, _BURY_NEVER_DUE)
        if buried:
            logger.error("%d task(s) made dead: their run_at is not a time", buried)

    def _update_if_any(self, probe: str, update: str) -> int:
        """Run `update` only when the read-only `probe` finds a row (an UPDATE takes the write
        lock even when it matches nothing); both bind `:queue` and `:now` by name."""
        params = {"queue": self.queue, "now": time.time()}

        def op(conn: sqlite3.Connection) -> int:
            if conn.execute(probe, params).fetchone() is None:
                return 0
            return int(conn.execute(update, params).rowcount)

        return self._run(op)

    def claim_slot(self, name: str, slot: float) -> bool:
        cursor = self._run(lambda conn: conn.execute(_CLAIM_SLOT, (self.queue, name, slot)))
        return cursor.rowcount == 1

    # -- status -----------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskStatus | None:
        key = _parse_task_id(task_id)
        if key is None:
            return None
        row = self._run(lambda conn: conn.execute(_GET, (*key, self.queue)).fetchone())
        return None if row is None else _status(row)

    def list(
        self, *, state: TaskState | None = None, task: str | None = None, limit: int = 50
    ) -> list[TaskStatus]:
        where, params = ["queue = ?"], [self.queue]
        if state is TaskState.CORRUPT:
            where.append(_MAYBE_CORRUPT)
        elif state is not None:
            where.append("state = ?")
            params.append(TaskState(state).value)
            # Spelled like the partial indexes' WHERE clauses so the planner can use them.
            where.append(_STATE_GROUP[TaskState(state)])
        if task is not None:
            where.append("task = ?")
            params.append(task)
        sql = (
            f"SELECT {_STATUS_COLUMNS} FROM holdfast_tasks WHERE {' AND '.join(where)}"
            " ORDER BY seq DESC LIMIT ?"
        )
        rows = self._run(lambda conn: conn.execute(sql, (*params, limit)).fetchall())
        statuses = [_status(row) for row in rows]
        # A row that reads as corrupt is listed under `corrupt`, not under its stored state.
        return [s for s in statuses if state is None or s.state is state]


# Rows that may read as `corrupt` (the check in Python has the last word).
_MAYBE_CORRUPT = """(
    state NOT IN ('queued', 'running', 'succeeded', 'failed', 'retrying', 'dead')
    OR typeof(task) <> 'text' OR typeof(attempts) <> 'integer' OR attempts < 0
    OR typeof(run_at) NOT IN ('integer', 'real') OR typeof(created_at) NOT IN ('integer', 'real')
    OR typeof(started_at) NOT IN ('null', 'integer', 'real')
    OR typeof(finished_at) NOT IN ('null', 'integer', 'real')
    OR abs(run_at) > 1e11 OR abs(created_at) > 1e11 OR abs(started_at) > 1e11
    OR abs(finished_at) > 1e11
    OR typeof(error) NOT IN ('null', 'text')
    OR (result IS NOT NULL AND (typeof(result) <> 'text' OR NOT json_valid(result)))
)"""

_STATE_GROUP = {
    TaskState.QUEUED: "state IN ('queued', 'retrying')",
    TaskState.RETRYING: "state IN ('queued', 'retrying')",
    TaskState.RUNNING: "state = 'running'",
    TaskState.SUCCEEDED: "1",
    TaskState.FAILED: "state IN ('failed', 'dead')",
    TaskState.DEAD: "state IN ('failed', 'dead')",
}


def _in_transaction(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> int:
    # executemany in autocommit mode would commit (write the WAL) once per row.
    with _transaction(conn):
        return conn.executemany(sql, rows).rowcount


def _settle_rows(settlements: Sequence[Settlement], now: float) -> list[tuple[Any, ...]]:
    return [
        (
            o.state.value,
            o.result,
            o.error,
            o.run_at,
            now if o.state.is_final else None,
            0 if o.counted else 1,
            *o.delivery.token,
        )
        for o in settlements
        if o.write
    ]


def _warn_lost(count: int) -> None:
    if count > 0:
        # Another worker re-claimed them after their lease ran out: its result wins.
        logger.warning("%d settlement(s) dropped: lease lost", count)


def _task_id(seq: int, token: Any) -> str:
    # A token that is not a 63-bit integer was not written by holdfast: no id can match it.
    return f"{seq}-{token:016x}" if isinstance(token, int) and token >= 0 else f"{seq}-corrupt"


def _inserted(cursor: sqlite3.Cursor) -> int:
    seq = cursor.lastrowid
    if seq is None:  # pragma: no cover - an INSERT always sets it
        raise sqlite3.DatabaseError("INSERT returned no row id")
    return seq


def _decode_text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _parse_task_id(task_id: str) -> tuple[int, int] | None:
    seq, _, token = task_id.partition("-")
    try:
        return int(seq), int(token, 16)
    except ValueError:
        return None


_STATUS_FIELDS = tuple(name.strip() for name in _STATUS_COLUMNS.split(","))[2:]


def _status(row: Sequence[Any]) -> TaskStatus:
    fields = dict(zip(_STATUS_FIELDS, row[2:], strict=True))
    return TaskStatus.from_row(id=_task_id(row[0], row[1]), **fields)


def _delivery(row: Sequence[Any], lease_id: str) -> Delivery:
    """The delivery of a claimed row; a row that cannot be read becomes a dead delivery.

    The claim is committed already, so nothing here may raise: a row that made this fail
    would stay `running`, and take the rest of its batch with it.
    """
    seq, token, task, payload, attempts, _ = row
    task_id, lease = _task_id(seq, token), (seq, lease_id)
    attempt = attempts if isinstance(attempts, int) else 1
    if not isinstance(task, str):
        task = _decode_text(task) if isinstance(task, bytes) else str(task)
    try:
        if not isinstance(payload, bytes):
            raise TypeError(f"a payload must be text, not {type(payload).__name__}")
        args, kwargs = load_payload(payload.decode())
    except Exception as exc:  # RecursionError, MemoryError, UnicodeDecodeError, ValueError...
        error = f"CorruptRecord: payload: {error_text(exc)}"
        return Delivery(task_id, task, [], {}, attempt, lease, error=error)
    return Delivery(task_id, task, args, kwargs, attempt, lease)
