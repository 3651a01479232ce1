"""The SQLite queue's schema, its connections, and the mapping between rows and records.

One `tasks` table holds one row per task for its whole life: the row is leased, updated
and finished in place, never deleted to be run (huey's SQLite dequeue deletes first and
loses the task when its worker is killed).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

from engine.errors import TaskStoreError
from engine.service.queue import lifecycle
from engine.service.queue.clock import from_us, to_us
from engine.service.queue.types import TaskRecord, TaskStatus

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0

_STATUSES = ", ".join(f"'{s.value}'" for s in TaskStatus)

_DDL = f"""
CREATE TABLE tasks (
    -- Submission order: FIFO's tie-breaker and the list cursor's. AUTOINCREMENT never
    -- reuses a number, even if old tasks are pruned one day.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL UNIQUE,
    -- UNIQUE makes a second task with the same key impossible, whatever the code above does.
    idempotency_key TEXT UNIQUE,
    -- Derived from resource_requirements at submit, so a claim filters in SQL.
    gpu_required INTEGER NOT NULL,
    file_path TEXT NOT NULL,
    workflow TEXT NOT NULL,
    parameters TEXT NOT NULL,
    priority INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({_STATUSES})),
    queued_at INTEGER NOT NULL,
    max_retries INTEGER NOT NULL,
    retry_count INTEGER NOT NULL,
    callback_url TEXT,
    metadata TEXT NOT NULL,
    resource_requirements TEXT NOT NULL,
    request_id TEXT,
    started_at INTEGER,
    completed_at INTEGER,
    worker_id TEXT,
    lease_expires_at INTEGER,
    next_attempt_at INTEGER,
    current_node TEXT,
    progress REAL NOT NULL,
    output_path TEXT,
    error TEXT,
    resource_usage TEXT NOT NULL,
    output_metadata TEXT NOT NULL,
    callback TEXT NOT NULL
);
CREATE INDEX tasks_runnable ON tasks (status, priority DESC, queued_at, seq);
CREATE INDEX tasks_lease ON tasks (status, lease_expires_at);
CREATE INDEX tasks_newest ON tasks (queued_at, seq);
CREATE INDEX tasks_finished ON tasks (completed_at)
"""

# Times are INTEGER microseconds since the epoch (exact, and they compare as numbers);
# dicts are JSON text.
_TIME_FIELDS = frozenset(
    {"queued_at", "started_at", "completed_at", "lease_expires_at", "next_attempt_at"}
)
_JSON_FIELDS = frozenset(
    {
        "parameters",
        "metadata",
        "resource_requirements",
        "resource_usage",
        "output_metadata",
        "callback",
    }
)
FIELDS = tuple(f.name for f in dataclasses.fields(TaskRecord))
COLUMNS = ("gpu_required", *FIELDS)


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode: every transaction is an explicit BEGIN."""
    # check_same_thread=False: the store's pool hands a connection to one thread at a time,
    # possibly a different one each time (FastAPI's thread pool); never two at once.
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    # FULL: in WAL mode NORMAL survives a killed process but may lose the last commits on
    # a power cut; a 202 for a submission, or a completion, is a promise worth one fsync
    # per transaction (well under a millisecond on a local SSD, against tasks of seconds).
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Switch the file to WAL and create the tables once; refuse a schema from the future."""
    # WAL: readers (API polls) never wait for the writer, and the one writer at a time
    # (BEGIN IMMEDIATE) is exactly the queue's need. The mode is stored in the file.
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise TaskStoreError(
            path,
            f"cannot use write-ahead logging here (journal mode stays {mode!r}); "
            "put the queue on a local disk, not a network share",
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            for statement in _DDL.split(";"):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        elif int(row[0]) != SCHEMA_VERSION:
            raise TaskStoreError(
                path,
                f"schema version {row[0]} is not the one this AMP knows ({SCHEMA_VERSION}); "
                "run the AMP that created it, or start a new queue file",
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def to_row(record: TaskRecord) -> dict[str, Any]:
    row: dict[str, Any] = {
        "gpu_required": int(lifecycle.gpu_required(record.resource_requirements))
    }
    for name in FIELDS:
        value = getattr(record, name)
        if name in _TIME_FIELDS:
            row[name] = None if value is None else to_us(value)
        elif name in _JSON_FIELDS:
            row[name] = json.dumps(value, sort_keys=True)
        elif name == "status":
            row[name] = value.value
        else:
            row[name] = value
    return row


def from_row(row: sqlite3.Row) -> TaskRecord:
    values: dict[str, Any] = {}
    for name in FIELDS:
        value = row[name]
        if name in _TIME_FIELDS:
            values[name] = None if value is None else from_us(value)
        elif name in _JSON_FIELDS:
            values[name] = json.loads(value)
        elif name == "status":
            values[name] = TaskStatus(value)
        else:
            values[name] = value
    return TaskRecord(**values)
