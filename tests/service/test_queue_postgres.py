"""The PostgreSQL queue: the shared contract, then what only a shared server can show —
durability across reconnecting, atomicity between threads and between processes (as workers
on several machines are), a killed one included.

The server is real (`postgres_server`: a throwaway PostgreSQL on loopback), each test gets
fresh databases, and other processes are `python -c` children talking to it over TCP.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from engine.errors import TaskStoreError
from engine.service.queue.clock import utc_now
from engine.service.queue.postgres import PostgresTaskQueue
from engine.service.queue.types import TaskQueue, TaskStatus
from tests.service.postgres_server import (  # noqa: F401 (fixtures)
    PostgresServer,
    new_postgres_store,
    postgres_dsn,
    postgres_server,
    postgres_stores,
)
from tests.service.queue_contract import FakeClock, QueueContract, QueueFactory, new_task
from tests.service.queue_processes import Children, child_scripts

REPO = Path(__file__).resolve().parents[2]

NewStore = Callable[[], str]


@pytest.fixture
def make_postgres(new_postgres_store: NewStore) -> Iterator[QueueFactory]:  # noqa: F811
    opened: list[PostgresTaskQueue] = []

    def make(
        *, clock: FakeClock, backoff_s: float = 2.0, max_backoff_s: float = 300.0
    ) -> TaskQueue:
        queue = PostgresTaskQueue(
            new_postgres_store(),
            clock=clock,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
        )
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()


class TestPostgresTaskQueue(QueueContract):
    @pytest.fixture
    def make_queue(self, make_postgres: QueueFactory) -> QueueFactory:
        return make_postgres


@pytest.fixture
def dsn(postgres_dsn: str) -> str:  # noqa: F811
    return postgres_dsn


def _sql(dsn: str, query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


# --- the database -----------------------------------------------------------------------


def test_tasks_survive_closing_and_reconnecting(dsn: str) -> None:
    clock = FakeClock()
    with PostgresTaskQueue(dsn, clock=clock) as queue:
        kept, _ = queue.submit(
            new_task("kept", parameters={"image_enhance": {"scale_factor": 2}}, priority=8),
            idempotency_key="k",
        )
        done, _ = queue.submit(new_task("done"))
        retried, _ = queue.submit(new_task("retried", priority=1))
        assert queue.claim("w1", has_gpu=False, lease_s=60) is not None  # kept
        queue.heartbeat(kept.task_id, "w1", lease_s=60, progress=0.5, resource_usage={"a": 1.5})
        assert queue.claim("w2", has_gpu=False, lease_s=60) is not None  # done
        queue.complete(done.task_id, "w2", output_path="/o", output_metadata={}, resource_usage={})
        assert queue.claim("w3", has_gpu=False, lease_s=60) is not None  # retried
        queue.fail(retried.task_id, "w3", error="boom")
        queue.record_callback(done.task_id, {"status_code": 204})
        before = {t: queue.get(t) for t in (kept.task_id, done.task_id, retried.task_id)}
        counts = queue.counts()
    with PostgresTaskQueue(dsn, clock=clock) as queue:
        assert {t: queue.get(t) for t in before} == before
        assert queue.counts() == counts
        again, created = queue.submit(new_task("other"), idempotency_key="k")
        assert not created and again == before[kept.task_id]
        # The lease taken before reconnecting still holds, and still expires.
        assert queue.heartbeat(kept.task_id, "w1", lease_s=60)
        clock.advance(3600)
        claimed = queue.claim("w4", has_gpu=False, lease_s=60)
        assert claimed is not None and claimed.task_id == retried.task_id
        assert queue.get(kept.task_id).retry_count == 1  # type: ignore[union-attr]


def test_connections_the_server_dropped_are_replaced(dsn: str) -> None:
    with PostgresTaskQueue(dsn) as queue:
        record, _ = queue.submit(new_task())
        # A server restart or an idle timeout ends the pooled connection between calls.
        terminated = _sql(
            dsn,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = current_setting('application_name')"
            " AND pid <> pg_backend_pid()",
        )
        assert terminated == [(True,)]
        assert queue.get(record.task_id) == record


def test_the_schema_is_versioned_and_timestamps_are_timestamptz(dsn: str) -> None:
    PostgresTaskQueue(dsn).close()
    assert _sql(dsn, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]
    types = dict(
        _sql(  # type: ignore[arg-type]
            dsn,
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'tasks' AND table_schema = current_schema()",
        )
    )
    assert types["queued_at"] == "timestamp with time zone"
    assert types["parameters"] == "jsonb"
    PostgresTaskQueue(dsn).close()  # opening again changes nothing


def test_a_schema_from_the_future_is_refused(dsn: str) -> None:
    PostgresTaskQueue(dsn).close()
    _sql(dsn, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(TaskStoreError, match="schema version 99"):
        PostgresTaskQueue(dsn)


def test_a_foreign_tasks_table_is_refused(dsn: str) -> None:
    _sql(dsn, "CREATE TABLE tasks (id INTEGER)")
    with pytest.raises(TaskStoreError, match="a database .*of its own"):
        PostgresTaskQueue(dsn)


def test_an_unreachable_server_is_a_store_error_without_the_password(
    postgres_server: PostgresServer,  # noqa: F811
) -> None:
    dsn = postgres_server.dsn("amp", port="1", connect_timeout="2")
    with pytest.raises(TaskStoreError, match="cannot connect") as info:
        PostgresTaskQueue(dsn)
    assert postgres_server.password not in str(info.value)
    assert "127.0.0.1:1/amp" in str(info.value)
    with pytest.raises(TaskStoreError, match="cannot connect"):
        PostgresTaskQueue("this is not a DSN")


def test_the_password_stays_out_of_the_repr(
    dsn: str,
    postgres_server: PostgresServer,  # noqa: F811
) -> None:
    with PostgresTaskQueue(dsn) as queue:
        assert postgres_server.password not in repr(queue)
        assert postgres_server.password not in queue.location


def test_a_closed_queue_refuses_calls(dsn: str) -> None:
    queue = PostgresTaskQueue(dsn)
    queue.close()
    with pytest.raises(RuntimeError, match="closed"):
        queue.get("pt-000000000000")


def test_a_failed_transition_leaves_the_row_untouched(dsn: str) -> None:
    with PostgresTaskQueue(dsn) as queue:
        record, _ = queue.submit(new_task())
        with pytest.raises(TypeError):  # not JSON: the UPDATE never happens
            queue.record_callback(record.task_id, {"bad": object()})
        with pytest.raises(ValueError):  # jsonb holds no NaN
            queue.record_callback(record.task_id, {"bad": float("nan")})
        with pytest.raises(ValueError, match="cannot store"):  # text holds no NUL
            queue.submit(new_task("nul\x00"))
        assert queue.get(record.task_id) == record
        # And the connection is usable again: the transaction was rolled back.
        assert queue.cancel(record.task_id).status is TaskStatus.CANCELLED
        assert queue.counts()[TaskStatus.CANCELLED] == 1


def test_a_forged_cursor_out_of_time_is_refused(dsn: str) -> None:
    from engine.errors import TaskCursorError
    from engine.service.queue import cursor

    with PostgresTaskQueue(dsn) as queue:
        forged = cursor.encode(cursor.PagePosition(10**18, 1))
        with pytest.raises(TaskCursorError):
            queue.list(after=forged)


def test_by_default_times_are_the_database_servers(dsn: str) -> None:
    """One clock for every machine: a worker whose own clock is skewed cannot expire
    another's lease early."""
    with PostgresTaskQueue(dsn, backoff_s=0.0) as queue:
        before = _sql(dsn, "SELECT now()")[0][0]
        record, _ = queue.submit(new_task())
        after = _sql(dsn, "SELECT now()")[0][0]
        assert before <= record.queued_at <= after  # type: ignore[operator]
        assert record.queued_at.tzinfo is timezone.utc
        claimed = queue.claim("w1", has_gpu=False, lease_s=0.05)
        assert claimed is not None and claimed.started_at is not None
        assert claimed.lease_expires_at == claimed.started_at + timedelta(seconds=0.05)
        time.sleep(0.1)
        again = queue.claim("w2", has_gpu=False, lease_s=60)  # expired, re-queued, no backoff
        assert again is not None and again.task_id == record.task_id
        assert (again.worker_id, again.retry_count) == ("w2", 1)


# --- threads ----------------------------------------------------------------------------


def test_500_concurrent_submissions_from_threads(dsn: str) -> None:
    with PostgresTaskQueue(dsn, pool_size=8) as queue:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda i: queue.submit(new_task(str(i))), range(500)))
        ids = {record.task_id for record, created in results if created}
        assert len(ids) == 500
        assert queue.counts()[TaskStatus.QUEUED] == 500
        listed, after = [], None
        while True:
            page, after = queue.list(limit=97, after=after)
            listed += [r.task_id for r in page]
            if after is None:
                break
        assert sorted(listed) == sorted(ids)
        paths = {queue.get(i).file_path for i in ids}  # type: ignore[union-attr]
        assert paths == {f"/nas/photos/{i}.jpg" for i in range(500)}
        # The pool keeps at most pool_size connections between calls.
        idle = _sql(
            dsn,
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = current_setting('application_name')"
            " AND pid <> pg_backend_pid()",
        )
        assert idle[0][0] <= 8  # type: ignore[operator]


# --- processes --------------------------------------------------------------------------

SCRIPTS = child_scripts(
    "from engine.service.queue.postgres import PostgresTaskQueue\n"
    "queue = PostgresTaskQueue(sys.argv[1])"
)
SUBMITTER, CLAIMER, HOLDER = SCRIPTS.submitter, SCRIPTS.claimer, SCRIPTS.holder


def _start(children: Children, code: str, dsn: str, go: Path, argsets: list[list[str]]) -> Children:
    """Start one child per argument list, all at once; return when every one is ready."""
    started = [
        subprocess.Popen(
            [sys.executable, "-c", code, dsn, str(go), *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for args in argsets
    ]
    children.extend(started)
    for child in started:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    return started


def _finish(child: subprocess.Popen[str]) -> str:
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    return out


def test_500_concurrent_submissions_from_processes(
    dsn: str, tmp_path: Path, children: Children
) -> None:
    # No queue opened first: the four processes also race to create the schema.
    go = tmp_path / "go"
    argsets = [[f"p{i}", "125", "20"] for i in range(4)]
    submitters = _start(children, SUBMITTER, dsn, go, argsets)
    go.touch()
    created = [json.loads(_finish(child)) for child in submitters]
    ids = [task_id for batch in created for task_id in batch]
    assert len(ids) == len(set(ids)) == 500
    with PostgresTaskQueue(dsn) as queue:
        assert queue.counts()[TaskStatus.QUEUED] == 500 + 20  # one task per shared key
        for i in range(500 // 4):
            for p in range(4):
                assert queue.get(created[p][i]).file_path == f"/p/p{p}-{i}.jpg"  # type: ignore[union-attr]
        stored, after = [], None
        while True:
            page, after = queue.list(limit=200, after=after)
            stored += [r.task_id for r in page if r.idempotency_key is None]
            if after is None:
                break
    assert sorted(stored) == sorted(ids)


def test_queues_opening_a_new_database_at_once_create_one_schema(dsn: str) -> None:
    barrier = threading.Barrier(8)

    def open_and_submit(i: int) -> str:
        barrier.wait()
        with PostgresTaskQueue(dsn) as queue:
            return queue.submit(new_task(str(i)))[0].task_id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(open_and_submit, range(8)))
    assert len(ids) == 8
    assert _sql(dsn, "SELECT value FROM meta") == [("1",)]
    with PostgresTaskQueue(dsn) as queue:
        assert queue.counts()[TaskStatus.QUEUED] == 8


def test_two_worker_processes_never_run_one_task_twice(
    dsn: str, tmp_path: Path, children: Children
) -> None:
    """Four claimer processes (workers on four machines) share 200 tasks."""
    with PostgresTaskQueue(dsn) as queue:
        ids = {queue.submit(new_task(str(i), priority=1 + i % 10))[0].task_id for i in range(200)}
    go = tmp_path / "go"
    logs = [tmp_path / f"claims-{i}.log" for i in range(4)]
    claimers = _start(
        children, CLAIMER, dsn, go, [[f"w{i}", str(log)] for i, log in enumerate(logs)]
    )
    started = time.monotonic()
    go.touch()
    for child in claimers:
        _finish(child)
    elapsed = time.monotonic() - started
    claims = {log: log.read_text().split() for log in logs}
    every_claim = [task_id for claimed in claims.values() for task_id in claimed]
    assert len(every_claim) == len(set(every_claim)) == 200
    assert set(every_claim) == ids
    # SKIP LOCKED lets claimers interleave rather than queue up behind one lock.
    assert sum(1 for claimed in claims.values() if claimed) >= 2, claims
    with PostgresTaskQueue(dsn) as queue:
        assert queue.counts()[TaskStatus.COMPLETED] == 200
        for i, log in enumerate(logs):
            for task_id in claims[log]:
                record = queue.get(task_id)
                assert record is not None and record.worker_id == f"w{i}"
                assert record.retry_count == 0
    assert elapsed < 30, f"200 tasks took {elapsed:.1f} s between 4 claimers"


def test_a_killed_claimer_loses_its_task_to_the_next_claimer(
    dsn: str, tmp_path: Path, children: Children
) -> None:
    with PostgresTaskQueue(dsn) as queue:
        record, _ = queue.submit(new_task())
    go = tmp_path / "go"
    go.touch()
    (child,) = _start(children, HOLDER, dsn, go, [["doomed-worker"]])
    assert child.stdout is not None
    assert child.stdout.readline().strip() == record.task_id
    time.sleep(0.2)  # mid heartbeats, quite likely mid-transaction
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=10) == -signal.SIGKILL
    # The server ends the dead client's session (and rolls back its transaction, releasing
    # the row) once it sees the socket closed: at once on one machine.
    deadline = time.monotonic() + 10
    while _sql(
        dsn,
        "SELECT pid FROM pg_stat_activity"
        " WHERE application_name = current_setting('application_name')"
        " AND pid <> pg_backend_pid()",
    ):
        assert time.monotonic() < deadline, "the killed worker's session lingers"
        time.sleep(0.01)

    # Seen from a minute past the dead worker's last possible lease.
    clock = FakeClock(utc_now() + timedelta(seconds=61))
    with PostgresTaskQueue(dsn, clock=clock, backoff_s=2.0) as queue:
        held = queue.get(record.task_id)
        assert held is not None and held.status is TaskStatus.PROCESSING
        assert held.worker_id == "doomed-worker" and held.progress == 0.5
        assert queue.claim("survivor", has_gpu=False, lease_s=60) is None  # backing off
        requeued = queue.get(record.task_id)
        assert requeued is not None and requeued.status is TaskStatus.QUEUED
        assert requeued.retry_count == 1
        assert requeued.error == "worker doomed-worker stopped answering (lease expired)"
        clock.advance(2)
        again = queue.claim("survivor", has_gpu=False, lease_s=60)
        assert again is not None and again.task_id == record.task_id
        assert again.retry_count == 1
        done = queue.complete(
            record.task_id, "survivor", output_path="/o", output_metadata={}, resource_usage={}
        )
        assert done.status is TaskStatus.COMPLETED and done.retry_count == 1
