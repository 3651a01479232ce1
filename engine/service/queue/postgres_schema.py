"""The PostgreSQL queue's schema, its connections, and the mapping between rows and records.

The same one-row-per-task design as the SQLite store (`sqlite_schema`): the row is leased,
updated and finished in place, never deleted to be run. Times are `timestamptz` (exact to
the microsecond, as Python's datetimes are), dicts are `jsonb`.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from engine.errors import TaskStoreError
from engine.service.queue import lifecycle
from engine.service.queue.types import TaskRecord, TaskStatus

SCHEMA_VERSION = 1
CONNECT_TIMEOUT_S = 10
IDLE_IN_TRANSACTION_S = 60
LOCK_TIMEOUT_S = 30
# pg_advisory_xact_lock's key for creating the schema: any constant, the same in every AMP.
_SCHEMA_LOCK = 0x414D_5051_5545_5545  # "AMPQUEUE"

_STATUSES = ", ".join(f"'{s.value}'" for s in TaskStatus)

# Plain CREATE TABLE (no IF NOT EXISTS): a `tasks` table that is not an AMP queue's is
# refused rather than used.
_DDL = [
    f"""
CREATE TABLE tasks (
    -- Submission order: FIFO's tie-breaker and the list cursor's.
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id TEXT NOT NULL UNIQUE,
    -- UNIQUE makes a second task with the same key impossible; submit relies on it
    -- (INSERT ... ON CONFLICT DO NOTHING) rather than on a check then an insert.
    idempotency_key TEXT UNIQUE,
    -- Derived from resource_requirements at submit, so a claim filters in SQL.
    gpu_required BOOLEAN NOT NULL,
    file_path TEXT NOT NULL,
    workflow TEXT NOT NULL,
    parameters JSONB NOT NULL,
    priority BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({_STATUSES})),
    queued_at TIMESTAMPTZ NOT NULL,
    max_retries BIGINT NOT NULL,
    retry_count BIGINT NOT NULL,
    callback_url TEXT,
    metadata JSONB NOT NULL,
    resource_requirements JSONB NOT NULL,
    request_id TEXT,
    started_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    worker_id TEXT,
    lease_expires_at TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ,
    current_node TEXT,
    progress DOUBLE PRECISION NOT NULL,
    output_path TEXT,
    error TEXT,
    resource_usage JSONB NOT NULL,
    output_metadata JSONB NOT NULL,
    callback JSONB NOT NULL
)""",
    # Partial indexes: a claim scans only the queued rows, the lease sweep only the leased.
    "CREATE INDEX tasks_runnable ON tasks (priority DESC, queued_at, seq) WHERE status = 'queued'",
    "CREATE INDEX tasks_lease ON tasks (lease_expires_at) WHERE status = 'processing'",
    "CREATE INDEX tasks_newest ON tasks (queued_at, seq)",
    "CREATE INDEX tasks_status_newest ON tasks (status, queued_at, seq)",
    "CREATE INDEX tasks_finished ON tasks (completed_at)",
]

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


def placeholder(column: str) -> str:
    """The SQL for one column's value in `to_row`'s mapping (JSON travels as text)."""
    return f"%({column})s::jsonb" if column in _JSON_FIELDS else f"%({column})s"


Connection = psycopg.Connection[dict[str, Any]]


def describe(dsn: str) -> str:
    """Where the queue lives, for messages: user, host, port and database, never a
    password (a DSN may carry one)."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "postgresql:(unparsable DSN)"
    user = info.get("user") or "default-user"
    host = info.get("host") or info.get("hostaddr") or "default-host"
    port = info.get("port") or "5432"
    dbname = info.get("dbname") or "default-database"
    return f"postgresql:{user}@{host}:{port}/{dbname}"


def connect(dsn: str) -> Connection:
    """A connection in autocommit mode: every transaction is an explicit BEGIN."""
    info = conninfo_to_dict(dsn)
    extra: dict[str, Any] = {}
    if "connect_timeout" not in info:
        extra["connect_timeout"] = CONNECT_TIMEOUT_S
    if "application_name" not in info:
        extra["application_name"] = "amp-queue"
    conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row, **extra)
    try:
        # Times come back in UTC whatever the server's default zone is. A transaction here
        # lasts a few statements: one idle for long belongs to a hung (paused, partitioned)
        # worker, and would hold its row locks; the server ends it. A call waiting that
        # long for a row lock reports the store busy instead of hanging.
        conn.execute(
            "SET TIME ZONE 'UTC';"
            f" SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_S}s';"
            f" SET lock_timeout = '{LOCK_TIMEOUT_S}s'"
        )
    except BaseException:
        conn.close()
        raise
    return conn


def ensure_schema(conn: Connection, location: str) -> None:
    """Create the tables once; refuse a schema from the future. Processes opening the
    queue at the same moment queue up on an advisory lock, so only one creates."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            try:
                with conn.transaction():  # a savepoint, to explain a clash below
                    for statement in _DDL:
                        conn.execute(statement)
            except psycopg.errors.DuplicateTable as exc:
                raise TaskStoreError(
                    location,
                    f"the database already has a table that is not this queue's ({exc}); "
                    "give the queue a database (or schema) of its own",
                ) from exc
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s)",
                (str(SCHEMA_VERSION),),
            )
        elif int(row["value"]) != SCHEMA_VERSION:
            raise TaskStoreError(
                location,
                f"schema version {row['value']} is not the one this AMP knows "
                f"({SCHEMA_VERSION}); run the AMP that created it, or start a new database",
            )


def to_row(record: TaskRecord) -> dict[str, Any]:
    """Query parameters for `placeholder`'s SQL. Raises TypeError for a value JSON cannot
    hold and ValueError for NaN or infinity (jsonb has neither), before any SQL runs."""
    row: dict[str, Any] = {"gpu_required": lifecycle.gpu_required(record.resource_requirements)}
    for name in FIELDS:
        value = getattr(record, name)
        if name in _JSON_FIELDS:
            row[name] = json.dumps(value, sort_keys=True, allow_nan=False)
        elif name == "status":
            row[name] = value.value
        else:
            row[name] = value
    return row


def from_row(row: dict[str, Any]) -> TaskRecord:
    values: dict[str, Any] = {}
    for name in FIELDS:
        value = row[name]
        if name in _TIME_FIELDS:
            values[name] = None if value is None else from_row_time(value)
        elif name == "status":
            values[name] = TaskStatus(value)
        else:
            values[name] = value  # jsonb arrives decoded, a new object per read
    return TaskRecord(**values)


def from_row_time(moment: datetime) -> datetime:
    """A `timestamptz` as the stores' times are: aware, in UTC."""
    return moment.astimezone(timezone.utc)
