"""The SQLite queue: the shared contract, then what only a file can show — durability across
reopening, and atomicity between threads and between processes, a killed one included.

Other processes are real `python -c` children working on the same file, as workers are.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from engine.errors import TaskStoreError
from engine.service.queue.clock import utc_now
from engine.service.queue.sqlite import SqliteTaskQueue
from engine.service.queue.types import TaskQueue, TaskStatus
from tests.service.queue_contract import FakeClock, QueueContract, QueueFactory, new_task
from tests.service.queue_processes import Children, child_scripts

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_sqlite(tmp_path: Path) -> Iterator[QueueFactory]:
    opened: list[SqliteTaskQueue] = []

    def make(
        *, clock: FakeClock, backoff_s: float = 2.0, max_backoff_s: float = 300.0
    ) -> TaskQueue:
        queue = SqliteTaskQueue(
            tmp_path / f"queue-{len(opened)}.sqlite",
            clock=clock,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
        )
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()


class TestSqliteTaskQueue(QueueContract):
    @pytest.fixture
    def make_queue(self, make_sqlite: QueueFactory) -> QueueFactory:
        return make_sqlite


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queue.sqlite"


# --- the file ---------------------------------------------------------------------------


def test_tasks_survive_closing_and_reopening(db: Path) -> None:
    clock = FakeClock()
    with SqliteTaskQueue(db, clock=clock) as queue:
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
    with SqliteTaskQueue(db, clock=clock) as queue:
        assert {t: queue.get(t) for t in before} == before
        assert queue.counts() == counts
        again, created = queue.submit(new_task("other"), idempotency_key="k")
        assert not created and again == before[kept.task_id]
        # The lease taken before reopening still holds, and still expires.
        assert queue.heartbeat(kept.task_id, "w1", lease_s=60)
        clock.advance(3600)
        claimed = queue.claim("w4", has_gpu=False, lease_s=60)
        assert claimed is not None and claimed.task_id == retried.task_id
        assert queue.get(kept.task_id).retry_count == 1  # type: ignore[union-attr]


def test_the_file_is_wal_and_versioned(db: Path) -> None:
    SqliteTaskQueue(db).close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert version == ("1",)
    finally:
        conn.close()


def test_a_schema_from_the_future_is_refused(db: Path) -> None:
    SqliteTaskQueue(db).close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(TaskStoreError, match="schema version 99"):
        SqliteTaskQueue(db)


def test_a_file_that_is_not_a_database_is_refused(db: Path) -> None:
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TaskStoreError, match=str(db.name)):
        SqliteTaskQueue(db)


def test_a_closed_queue_refuses_calls(db: Path) -> None:
    queue = SqliteTaskQueue(db)
    queue.close()
    with pytest.raises(RuntimeError, match="closed"):
        queue.get("pt-000000000000")


def test_a_failed_transition_leaves_the_row_untouched(db: Path) -> None:
    with SqliteTaskQueue(db) as queue:
        record, _ = queue.submit(new_task())
        with pytest.raises(TypeError):  # not JSON: the UPDATE never happens
            queue.record_callback(record.task_id, {"bad": object()})
        assert queue.get(record.task_id) == record
        # And the connection is usable again: the transaction was rolled back.
        assert queue.cancel(record.task_id).status is TaskStatus.CANCELLED


# --- threads ----------------------------------------------------------------------------


def test_500_concurrent_submissions_from_threads(db: Path) -> None:
    with SqliteTaskQueue(db) as queue:
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


# --- processes --------------------------------------------------------------------------

SCRIPTS = child_scripts(
    "from engine.service.queue.sqlite import SqliteTaskQueue\n"
    "queue = SqliteTaskQueue(Path(sys.argv[1]))"
)
SUBMITTER, CLAIMER, HOLDER = SCRIPTS.submitter, SCRIPTS.claimer, SCRIPTS.holder


def _start(children: Children, code: str, db: Path, go: Path, *args: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(db), str(go), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    children.append(child)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def _finish(child: subprocess.Popen[str]) -> str:
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    return out


def test_500_concurrent_submissions_from_processes(
    db: Path, tmp_path: Path, children: Children
) -> None:
    SqliteTaskQueue(db).close()
    go = tmp_path / "go"
    submitters = [_start(children, SUBMITTER, db, go, f"p{i}", "125", "20") for i in range(4)]
    go.touch()
    created = [json.loads(_finish(child)) for child in submitters]
    ids = [task_id for batch in created for task_id in batch]
    assert len(ids) == len(set(ids)) == 500
    with SqliteTaskQueue(db) as queue:
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


def test_concurrent_claimer_processes_run_each_task_once(
    db: Path, tmp_path: Path, children: Children
) -> None:
    with SqliteTaskQueue(db) as queue:
        ids = {queue.submit(new_task(str(i), priority=1 + i % 10))[0].task_id for i in range(200)}
    go = tmp_path / "go"
    logs = [tmp_path / f"claims-{i}.log" for i in range(4)]
    claimers = [_start(children, CLAIMER, db, go, f"w{i}", str(log)) for i, log in enumerate(logs)]
    started = time.monotonic()
    go.touch()
    for child in claimers:
        _finish(child)
    elapsed = time.monotonic() - started
    claims = {log: log.read_text().split() for log in logs}
    every_claim = [task_id for claimed in claims.values() for task_id in claimed]
    assert len(every_claim) == len(set(every_claim)) == 200
    assert set(every_claim) == ids
    assert sum(1 for claimed in claims.values() if claimed) >= 2, claims  # they did share
    with SqliteTaskQueue(db) as queue:
        assert queue.counts()[TaskStatus.COMPLETED] == 200
        for i, log in enumerate(logs):
            for task_id in claims[log]:
                record = queue.get(task_id)
                assert record is not None and record.worker_id == f"w{i}"
                assert record.retry_count == 0
    assert elapsed < 30, f"200 tasks took {elapsed:.1f} s between 4 claimers"


def test_a_killed_claimer_loses_its_task_to_the_next_claimer(
    db: Path, tmp_path: Path, children: Children
) -> None:
    with SqliteTaskQueue(db) as queue:
        record, _ = queue.submit(new_task())
    go = tmp_path / "go"
    go.touch()
    child = _start(children, HOLDER, db, go, "doomed-worker")
    assert child.stdout is not None
    assert child.stdout.readline().strip() == record.task_id
    time.sleep(0.2)  # mid heartbeats, quite likely mid-transaction
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=10) == -signal.SIGKILL

    # Seen from a minute past the dead worker's last possible lease.
    clock = FakeClock(utc_now() + timedelta(seconds=61))
    with SqliteTaskQueue(db, clock=clock, backoff_s=2.0) as queue:
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
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
