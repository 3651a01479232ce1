"""The durable task queue in one SQLite file (WAL): the embedded default.

Safe for several threads and several processes on one machine: every method is one
transaction, writers `BEGIN IMMEDIATE` (they take SQLite's single write lock before
reading, so a read-then-write such as claim or an idempotent submit cannot race another
process), readers a deferred `BEGIN` (a consistent snapshot that never blocks a writer).
Connections come from a small pool, one per concurrent caller; open one queue object per
process (a connection must not cross a fork).

The transitions themselves are `lifecycle`'s, shared with the in-memory twin.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.errors import TaskStoreError
from engine.service.queue import cursor, lifecycle
from engine.service.queue.changes import Change, TaskChanges
from engine.service.queue.clock import Clock, to_us, utc_now
from engine.service.queue.pool import ConnectionPool
from engine.service.queue.sqlite_schema import (
    COLUMNS,
    connect,
    ensure_schema,
    from_row,
    to_row,
)
from engine.service.queue.types import NewTask, TaskRecord, TaskStatus

_INSERT = f"INSERT INTO tasks ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"
_UPDATE = (
    "UPDATE tasks SET "
    + ", ".join(f"{c} = :{c}" for c in COLUMNS if c != "task_id")
    + " WHERE task_id = :task_id"
)
_FINAL = tuple(s.value for s in TaskStatus if s.final)


class SqliteTaskQueue(TaskChanges):
    def __init__(
        self,
        path: Path,
        *,
        clock: Clock = utc_now,
        backoff_s: float = 2.0,
        max_backoff_s: float = 300.0,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._policy = lifecycle.RetryPolicy(backoff_s, max_backoff_s)
        self._pool = ConnectionPool(self._connect, owner=f"the task queue {self.path}")
        conn = self._connect()
        try:
            ensure_schema(conn, self.path)
        except sqlite3.Error as exc:
            conn.close()
            raise TaskStoreError(self.path, f"cannot set up the database: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._pool.give_back(conn)

    def close(self) -> None:
        """Close every connection; connections in use close when their call returns."""
        self._pool.close()

    def __enter__(self) -> SqliteTaskQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(
        self, task: NewTask, *, idempotency_key: str | None = None
    ) -> tuple[TaskRecord, bool]:
        with self._write() as conn:
            if idempotency_key is not None:
                row = conn.execute(
                    "SELECT * FROM tasks WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    return from_row(row), False
            task_id = lifecycle.new_task_id()
            while conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone():
                task_id = lifecycle.new_task_id()
            record = lifecycle.new_record(
                task, task_id, idempotency_key=idempotency_key, now=self._clock()
            )
            conn.execute(_INSERT, to_row(record))
            return record, True

    def get(self, task_id: str) -> TaskRecord | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else from_row(row)

    def list(
        self, *, status: TaskStatus | None = None, limit: int = 50, after: str | None = None
    ) -> tuple[list[TaskRecord], str | None]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit + 1}
        if status is not None:
            where.append("status = :status")
            params["status"] = status.value
        if after is not None:
            start = cursor.decode(after)
            where.append("(queued_at, seq) < (:queued_at, :seq)")
            params.update(queued_at=start.queued_at_us, seq=start.sequence)
        sql = (
            "SELECT * FROM tasks"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY queued_at DESC, seq DESC LIMIT :limit"
        )
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        if len(rows) <= limit:
            return [from_row(r) for r in rows], None
        last = rows[limit - 1]
        position = cursor.PagePosition(last["queued_at"], last["seq"])
        return [from_row(r) for r in rows[:limit]], cursor.encode(position)

    def claim(self, worker_id: str, *, has_gpu: bool, lease_s: float) -> TaskRecord | None:
        lifecycle.check_lease_s(lease_s)
        with self._write() as conn:
            now = self._clock()
            now_us = to_us(now)
            expired = conn.execute(
                "SELECT * FROM tasks WHERE status = ? AND lease_expires_at < ?",
                (TaskStatus.PROCESSING.value, now_us),
            ).fetchall()
            for row in expired:
                record = lifecycle.after_lease_expired(from_row(row), now=now, policy=self._policy)
                self._put(conn, record)
            row = conn.execute(
                "SELECT * FROM tasks WHERE status = :queued"
                " AND (next_attempt_at IS NULL OR next_attempt_at <= :now)"
                " AND (:has_gpu OR gpu_required = 0)"
                " ORDER BY priority DESC, queued_at, seq LIMIT 1",
                {"queued": TaskStatus.QUEUED.value, "now": now_us, "has_gpu": int(has_gpu)},
            ).fetchone()
            if row is None:
                return None
            return self._put(
                conn, lifecycle.leased(from_row(row), worker_id, now=now, lease_s=lease_s)
            )

    def counts(self) -> dict[TaskStatus, int]:
        counts = dict.fromkeys(TaskStatus, 0)
        with self._read() as conn:
            for status, n in conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status"):
                counts[TaskStatus(status)] = n
        return counts

    def finished_since(self, moment: datetime) -> Sequence[TaskRecord]:
        marks = ", ".join("?" for _ in _FINAL)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT * FROM tasks WHERE completed_at >= ? AND status IN ({marks})"
                " ORDER BY completed_at, seq",
                (to_us(moment), *_FINAL),
            ).fetchall()
        return [from_row(r) for r in rows]

    @contextmanager
    def _change(self, task_id: str) -> Iterator[Change]:
        with self._write() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
            record = from_row(row) if row is not None else None
            yield Change(task_id, record, self._clock(), lambda new: self._put(conn, new))

    @staticmethod
    def _put(conn: sqlite3.Connection, record: TaskRecord) -> TaskRecord:
        conn.execute(_UPDATE, to_row(record))
        return record

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front: two claimers never read the same
        # "next task" and both lease it, and a busy database waits (busy timeout) here,
        # not at a lock upgrade mid-transaction where SQLite could not wait.
        with self._transaction("BEGIN IMMEDIATE") as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._transaction("BEGIN") as conn:
            yield conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        conn, _ = self._pool.borrow()
        try:
            try:
                conn.execute(begin)
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            # Locked past the busy timeout, disk full, I/O error: the store, not a bug.
            raise TaskStoreError(self.path, str(exc)) from exc
        finally:
            self._pool.give_back(conn)

    def _connect(self) -> sqlite3.Connection:
        try:
            return connect(self.path)
        except sqlite3.Error as exc:
            raise TaskStoreError(self.path, f"cannot open the database: {exc}") from exc
