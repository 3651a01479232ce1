"""The durable task queue in a PostgreSQL database: one queue shared by workers on several
machines.

Same contract and same transitions (`lifecycle`) as the SQLite store; only the locking
differs. Every method is one READ COMMITTED transaction that locks the rows it changes:

- `claim` takes the next runnable row with `SELECT ... FOR UPDATE SKIP LOCKED`, so
  concurrent claimers never wait on each other and never lease the same row: each skips
  the rows another is taking. The sweep of expired leases before it skips locked rows too
  (another claimer is already re-queueing them, or their worker is heartbeating).
- Changes to one task (heartbeat, complete, fail, cancel, callback) lock its row with
  `SELECT ... FOR UPDATE`, then apply the transition and write the row back; a row's
  re-read under the lock is the latest committed version. A transaction waits on one row
  at most and never while holding another, so none can deadlock.
- `submit` relies on the UNIQUE idempotency key: `INSERT ... ON CONFLICT DO NOTHING`, then
  the row that won, so two submissions with one key create one task on any number of
  machines.

Times come from the database server's clock unless a clock is given, so machines whose
clocks disagree still agree on when a lease expired. The list cursor is a position in
(queued_at, seq) order, as in the SQLite store; a submission that commits while a client
pages, with an earlier position than the page it is on, shows on a fresh listing.

Connections come from a small pool, one per concurrent caller; open one queue object per
process (a connection must not cross a fork). Give the queue a database (or a schema, via
`options=-csearch_path=...` in the DSN) of its own: it creates `tasks` and `meta` there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from engine.errors import TaskCursorError, TaskStoreError
from engine.service.queue import cursor, lifecycle
from engine.service.queue.changes import Change, TaskChanges
from engine.service.queue.clock import Clock, from_us, to_us
from engine.service.queue.pool import ConnectionPool
from engine.service.queue.postgres_schema import (
    COLUMNS,
    Connection,
    connect,
    describe,
    ensure_schema,
    from_row,
    from_row_time,
    placeholder,
    to_row,
)
from engine.service.queue.types import NewTask, TaskRecord, TaskStatus

_INSERT = (
    f"INSERT INTO tasks ({', '.join(COLUMNS)})"
    f" VALUES ({', '.join(placeholder(c) for c in COLUMNS)})"
    " ON CONFLICT DO NOTHING RETURNING seq"
)
_UPDATE = (
    "UPDATE tasks SET "
    + ", ".join(f"{c} = {placeholder(c)}" for c in COLUMNS if c != "task_id")
    + " WHERE task_id = %(task_id)s"
)
_FINAL = [s.value for s in TaskStatus if s.final]


class PostgresTaskQueue(TaskChanges):
    def __init__(
        self,
        dsn: str,
        *,
        clock: Clock | None = None,
        backoff_s: float = 2.0,
        max_backoff_s: float = 300.0,
        pool_size: int = 4,
    ) -> None:
        """`dsn`: a libpq connection string or URL. `clock`: None (the default) reads the
        database server's clock, one clock for every machine sharing the queue, so a skewed
        worker clock cannot expire another worker's lease early. `pool_size`: idle
        connections kept for reuse (more are opened while more threads call at once, then
        closed)."""
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}")
        self.location = describe(dsn)  # for messages: the DSN may hold a password
        self._dsn = dsn
        self._clock = clock
        self._policy = lifecycle.RetryPolicy(backoff_s, max_backoff_s)
        self._pool = ConnectionPool(
            self._connect, owner=f"the task queue {self.location}", max_idle=pool_size
        )
        conn = self._connect()
        try:
            ensure_schema(conn, self.location)
        except psycopg.Error as exc:
            conn.close()
            raise TaskStoreError(self.location, f"cannot set up the database: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._pool.give_back(conn)

    def __repr__(self) -> str:
        return f"PostgresTaskQueue({self.location!r})"

    def close(self) -> None:
        """Close every connection; connections in use close when their call returns."""
        self._pool.close()

    def __enter__(self) -> PostgresTaskQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(
        self, task: NewTask, *, idempotency_key: str | None = None
    ) -> tuple[TaskRecord, bool]:
        with self._transaction() as (conn, now):
            while True:
                record = lifecycle.new_record(
                    task, lifecycle.new_task_id(), idempotency_key=idempotency_key, now=now
                )
                # A clash on the key waits for the other submission's transaction, then
                # does nothing; the SELECT below (a new snapshot) sees its task.
                if conn.execute(_INSERT, to_row(record)).fetchone() is not None:
                    return record, True
                if idempotency_key is not None:
                    row = conn.execute(
                        "SELECT * FROM tasks WHERE idempotency_key = %s", (idempotency_key,)
                    ).fetchone()
                    if row is not None:
                        return from_row(row), False
                # Otherwise the random task id clashed: draw another.

    def get(self, task_id: str) -> TaskRecord | None:
        with self._transaction() as (conn, _):
            row = conn.execute("SELECT * FROM tasks WHERE task_id = %s", (task_id,)).fetchone()
        return None if row is None else from_row(row)

    def list(
        self, *, status: TaskStatus | None = None, limit: int = 50, after: str | None = None
    ) -> tuple[list[TaskRecord], str | None]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit + 1}
        if status is not None:
            where.append("status = %(status)s")
            params["status"] = status.value
        if after is not None:
            start = cursor.decode(after)
            try:
                queued_at = from_us(start.queued_at_us)
            except OverflowError as exc:  # well-formed, but no time a task can have
                raise TaskCursorError(after) from exc
            where.append("(queued_at, seq) < (%(queued_at)s, %(seq)s)")
            params.update(queued_at=queued_at, seq=start.sequence)
        sql = (
            "SELECT * FROM tasks"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY queued_at DESC, seq DESC LIMIT %(limit)s"
        )
        with self._transaction() as (conn, _):
            rows = conn.execute(sql, params).fetchall()
        if len(rows) <= limit:
            return [from_row(r) for r in rows], None
        last = rows[limit - 1]
        position = cursor.PagePosition(to_us(last["queued_at"]), last["seq"])
        return [from_row(r) for r in rows[:limit]], cursor.encode(position)

    def claim(self, worker_id: str, *, has_gpu: bool, lease_s: float) -> TaskRecord | None:
        lifecycle.check_lease_s(lease_s)
        with self._transaction() as (conn, now):
            expired = conn.execute(
                "SELECT * FROM tasks WHERE status = %s AND lease_expires_at < %s"
                " ORDER BY seq FOR UPDATE SKIP LOCKED",
                (TaskStatus.PROCESSING.value, now),
            ).fetchall()
            for row in expired:
                record = lifecycle.after_lease_expired(from_row(row), now=now, policy=self._policy)
                self._put(conn, record)
            row = conn.execute(
                "SELECT * FROM tasks WHERE status = %(queued)s"
                " AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)"
                " AND (%(has_gpu)s OR NOT gpu_required)"
                " ORDER BY priority DESC, queued_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED",
                {"queued": TaskStatus.QUEUED.value, "now": now, "has_gpu": has_gpu},
            ).fetchone()
            if row is None:
                return None
            return self._put(
                conn, lifecycle.leased(from_row(row), worker_id, now=now, lease_s=lease_s)
            )

    def counts(self) -> dict[TaskStatus, int]:
        counts = dict.fromkeys(TaskStatus, 0)
        with self._transaction() as (conn, _):
            rows = conn.execute("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")
            for row in rows:
                counts[TaskStatus(row["status"])] = row["n"]
        return counts

    def finished_since(self, moment: datetime) -> Sequence[TaskRecord]:
        to_us(moment)  # a naive datetime raises TypeError, as in the other stores
        with self._transaction() as (conn, _):
            rows = conn.execute(
                "SELECT * FROM tasks WHERE completed_at >= %s AND status = ANY(%s)"
                " ORDER BY completed_at, seq",
                (moment, _FINAL),
            ).fetchall()
        return [from_row(r) for r in rows]

    @contextmanager
    def _change(self, task_id: str) -> Iterator[Change]:
        with self._transaction() as (conn, now):
            row = conn.execute(
                "SELECT * FROM tasks WHERE task_id = %s FOR UPDATE", (task_id,)
            ).fetchone()
            record = from_row(row) if row is not None else None
            yield Change(task_id, record, now, lambda new: self._put(conn, new))

    @staticmethod
    def _put(conn: Connection, record: TaskRecord) -> TaskRecord:
        conn.execute(_UPDATE, to_row(record))
        return record

    @contextmanager
    def _transaction(self) -> Iterator[tuple[Connection, datetime]]:
        """A transaction, and the time it runs at."""
        conn, now = self._begin()
        try:
            try:
                if self._clock is not None:
                    now = self._clock()
                    to_us(now)  # a naive datetime raises TypeError, as in the other stores
                yield conn, now
                conn.execute("COMMIT")
            except BaseException:
                if not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                raise
        except psycopg.DataError as exc:
            # A value PostgreSQL cannot hold (a NUL character in text): the caller's.
            raise ValueError(f"the task queue cannot store this value: {exc}") from exc
        except psycopg.OperationalError as exc:
            # Server gone, connection lost, statement or lock timeout: the store, not a bug.
            raise TaskStoreError(self.location, str(exc)) from exc
        finally:
            self._give_back(conn)

    def _begin(self) -> tuple[Connection, datetime]:
        """A connection in a fresh transaction, and the server's time at its start (read
        in the same round trip). An idle connection the server dropped meanwhile (a
        restart, an idle timeout) is replaced once, transparently."""
        conn, reused = self._pool.borrow(usable=lambda c: not c.closed)
        try:
            return conn, self._begin_on(conn)
        except psycopg.OperationalError as exc:
            conn.close()
            if not reused:
                raise TaskStoreError(self.location, str(exc)) from exc
        except BaseException:
            conn.close()
            raise
        conn = self._connect()
        try:
            return conn, self._begin_on(conn)
        except psycopg.OperationalError as exc:
            conn.close()
            raise TaskStoreError(self.location, str(exc)) from exc
        except BaseException:
            conn.close()
            raise

    @staticmethod
    def _begin_on(conn: Connection) -> datetime:
        cur = conn.execute("BEGIN; SELECT transaction_timestamp() AS now")
        cur.nextset()  # past BEGIN's result, to the SELECT's
        row = cur.fetchone()
        assert row is not None  # a SELECT without FROM has one row
        return from_row_time(row["now"])

    def _connect(self) -> Connection:
        try:
            return connect(self._dsn)
        except psycopg.Error as exc:
            raise TaskStoreError(self.location, f"cannot connect: {exc}") from exc

    def _give_back(self, conn: Connection) -> None:
        healthy = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
        self._pool.give_back(conn, healthy=healthy)
