"""The `TaskQueue` contract, one suite run on every store (as huey's `StorageTests` mixin is).

A test module subclasses `QueueContract` and provides a `make_queue` fixture: a factory
taking a clock and backoff settings and returning a fresh, empty store. Time only moves
when a test advances its `FakeClock`, so leases, expiry and backoff are exact.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Protocol

import pytest

from engine.errors import TaskCursorError, TaskLeaseLostError, TaskNotFoundError
from engine.service.queue.types import NewTask, TaskQueue, TaskRecord, TaskStatus

START = datetime(2024, 6, 15, 10, 30, 45, 123456, tzinfo=timezone.utc)


class FakeClock:
    """A clock that moves only when told to; safe to read from several threads."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class QueueFactory(Protocol):
    def __call__(
        self, *, clock: FakeClock, backoff_s: float = 2.0, max_backoff_s: float = 300.0
    ) -> TaskQueue: ...


def new_task(name: str = "a", **overrides: object) -> NewTask:
    fields: dict[str, object] = {"file_path": f"/nas/photos/{name}.jpg", "workflow": "wf"}
    fields.update(overrides)
    return NewTask(**fields)  # type: ignore[arg-type]


class QueueContract:
    """Every behaviour `types.TaskQueue` documents; subclasses supply `make_queue`."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def queue(self, make_queue: QueueFactory, clock: FakeClock) -> TaskQueue:
        return make_queue(clock=clock)

    # --- submit and get ---------------------------------------------------------------

    def test_submit_then_get_round_trips_every_field(
        self, queue: TaskQueue, clock: FakeClock
    ) -> None:
        task = NewTask(
            file_path="/nas/photos/raw/IMG_1.jpg",
            workflow="nas-photo-processing",
            parameters={"image_enhance": {"scale_factor": 2, "denoise_strength": 0.3}},
            priority=7,
            max_retries=2,
            callback_url="https://example.test/cb",
            metadata={"project_id": "proj-456", "tags": ["a", "b"]},
            resource_requirements={"gpu_required": True, "memory_mb": 8192},
            request_id="req-1",
        )
        record, created = queue.submit(task, idempotency_key="key-1")
        assert created
        assert re.fullmatch(r"pt-[0-9a-f]{12}", record.task_id)
        assert record.status is TaskStatus.QUEUED
        assert record.queued_at == START
        assert (record.retry_count, record.progress, record.error) == (0, 0.0, None)
        assert record.idempotency_key == "key-1"
        for name in (
            "file_path",
            "workflow",
            "parameters",
            "priority",
            "max_retries",
            "callback_url",
            "metadata",
            "resource_requirements",
            "request_id",
        ):
            assert getattr(record, name) == getattr(task, name), name
        assert queue.get(record.task_id) == record

    def test_get_unknown_is_none(self, queue: TaskQueue) -> None:
        assert queue.get("pt-000000000000") is None

    def test_task_ids_are_unique(self, queue: TaskQueue) -> None:
        ids = {queue.submit(new_task(str(i)))[0].task_id for i in range(200)}
        assert len(ids) == 200

    def test_returned_records_are_copies(self, queue: TaskQueue) -> None:
        record, _ = queue.submit(new_task(parameters={"nested": {"x": 1}}))
        record.parameters["nested"]["x"] = 2
        fetched = queue.get(record.task_id)
        assert fetched is not None and fetched.parameters == {"nested": {"x": 1}}

    # --- idempotency -------------------------------------------------------------------

    def test_same_idempotency_key_returns_the_existing_task(self, queue: TaskQueue) -> None:
        first, created = queue.submit(new_task("a"), idempotency_key="k")
        again, created_again = queue.submit(new_task("b"), idempotency_key="k")
        other, created_other = queue.submit(new_task("a"), idempotency_key="other")
        assert created and not created_again and created_other
        assert again == first and again.file_path.endswith("a.jpg")
        assert other.task_id != first.task_id
        assert queue.counts()[TaskStatus.QUEUED] == 2

    def test_without_a_key_every_submit_is_new(self, queue: TaskQueue) -> None:
        a, _ = queue.submit(new_task("a"))
        b, created = queue.submit(new_task("a"))
        assert created and a.task_id != b.task_id

    def test_the_key_holds_after_the_task_finished(self, queue: TaskQueue) -> None:
        record, _ = queue.submit(new_task(), idempotency_key="k")
        queue.cancel(record.task_id)
        again, created = queue.submit(new_task(), idempotency_key="k")
        assert not created and again.status is TaskStatus.CANCELLED

    def test_concurrent_submits_with_one_key_create_one_task(self, queue: TaskQueue) -> None:
        with ThreadPoolExecutor(8) as pool:
            results = list(
                pool.map(lambda i: queue.submit(new_task(str(i)), idempotency_key="k"), range(40))
            )
        assert sum(created for _, created in results) == 1
        assert len({record.task_id for record, _ in results}) == 1

    # --- claim order and GPU filtering -------------------------------------------------

    def test_claims_by_priority_then_fifo(self, queue: TaskQueue, clock: FakeClock) -> None:
        names = []
        for name, priority in [("a", 5), ("b", 9), ("c", 5), ("d", 1), ("e", 9), ("f", 5)]:
            queue.submit(new_task(name, priority=priority))
            names.append(name)
            if name != "e":  # e and f share a microsecond: submission order breaks the tie
                clock.advance(1)
        order = []
        while (record := queue.claim("w", has_gpu=True, lease_s=60)) is not None:
            order.append(record.file_path.rsplit("/", 1)[1][0])
        assert order == ["b", "e", "a", "c", "f", "d"]

    def test_gpu_tasks_only_go_to_gpu_workers(self, queue: TaskQueue) -> None:
        gpu, _ = queue.submit(
            new_task("g", priority=10, resource_requirements={"gpu_required": True})
        )
        cpu, _ = queue.submit(
            new_task("c", priority=1, resource_requirements={"gpu_required": False})
        )
        plain, _ = queue.submit(new_task("p", priority=1))
        claimed = queue.claim("cpu-worker", has_gpu=False, lease_s=60)
        assert claimed is not None and claimed.task_id == cpu.task_id
        claimed = queue.claim("cpu-worker", has_gpu=False, lease_s=60)
        assert claimed is not None and claimed.task_id == plain.task_id
        assert queue.claim("cpu-worker", has_gpu=False, lease_s=60) is None
        claimed = queue.claim("gpu-worker", has_gpu=True, lease_s=60)
        assert claimed is not None and claimed.task_id == gpu.task_id

    def test_gpu_workers_also_take_cpu_tasks(self, queue: TaskQueue) -> None:
        record, _ = queue.submit(new_task())
        claimed = queue.claim("gpu-worker", has_gpu=True, lease_s=60)
        assert claimed is not None and claimed.task_id == record.task_id

    def test_claim_on_an_empty_queue_is_none(self, queue: TaskQueue) -> None:
        assert queue.claim("w", has_gpu=True, lease_s=60) is None

    def test_claim_leases_the_task(self, queue: TaskQueue, clock: FakeClock) -> None:
        record, _ = queue.submit(new_task())
        clock.advance(5)
        claimed = queue.claim("w1", has_gpu=False, lease_s=30)
        assert claimed is not None
        assert claimed.status is TaskStatus.PROCESSING
        assert claimed.worker_id == "w1"
        assert claimed.started_at == clock.now
        assert claimed.lease_expires_at == clock.now + timedelta(seconds=30)
        assert queue.get(record.task_id) == claimed
        assert queue.claim("w2", has_gpu=False, lease_s=30) is None

    def test_claim_refuses_a_non_positive_lease(self, queue: TaskQueue) -> None:
        queue.submit(new_task())
        with pytest.raises(ValueError, match="lease_s"):
            queue.claim("w", has_gpu=False, lease_s=0)

    # --- heartbeats and leases ---------------------------------------------------------

    def test_heartbeat_extends_the_lease_and_records_progress(
        self, queue: TaskQueue, clock: FakeClock
    ) -> None:
        queue.submit(new_task())
        claimed = queue.claim("w1", has_gpu=False, lease_s=30)
        assert claimed is not None
        clock.advance(20)
        usage = {"cpu_seconds": 1.5}
        assert queue.heartbeat(
            claimed.task_id,
            "w1",
            lease_s=30,
            current_node="ai/image-enhance",
            progress=0.4,
            resource_usage=usage,
        )
        record = queue.get(claimed.task_id)
        assert record is not None
        assert record.lease_expires_at == clock.now + timedelta(seconds=30)
        assert (record.current_node, record.progress) == ("ai/image-enhance", 0.4)
        assert record.resource_usage == usage
        # A heartbeat without figures keeps the last ones.
        assert queue.heartbeat(claimed.task_id, "w1", lease_s=30)
        record = queue.get(claimed.task_id)
        assert record is not None and record.progress == 0.4
        # 40 s after the claim, past the first lease but not the extended one: still held.
        clock.advance(20)
        assert queue.claim("w2", has_gpu=False, lease_s=30) is None
        record = queue.get(claimed.task_id)
        assert record is not None and record.status is TaskStatus.PROCESSING
        assert record.worker_id == "w1" and record.retry_count == 0

    def test_heartbeat_from_another_worker_or_for_no_task_is_refused(
        self, queue: TaskQueue
    ) -> None:
        queue.submit(new_task())
        claimed = queue.claim("w1", has_gpu=False, lease_s=30)
        assert claimed is not None
        assert not queue.heartbeat(claimed.task_id, "w2", lease_s=30)
        assert not queue.heartbeat("pt-000000000000", "w1", lease_s=30)

    def test_expired_lease_requeues_with_a_retry_and_backoff(
        self, make_queue: QueueFactory, clock: FakeClock
    ) -> None:
        queue = make_queue(clock=clock, backoff_s=2.0)
        record, _ = queue.submit(new_task())
        assert queue.claim("w1", has_gpu=False, lease_s=30) is not None
        clock.advance(30)  # exactly at expiry: not expired yet
        assert queue.claim("w2", has_gpu=False, lease_s=30) is None
        assert queue.get(record.task_id).status is TaskStatus.PROCESSING  # type: ignore[union-attr]
        clock.advance(1)
        # The claim re-queues it, but its backoff has not run yet.
        assert queue.claim("w2", has_gpu=False, lease_s=30) is None
        requeued = queue.get(record.task_id)
        assert requeued is not None
        assert requeued.status is TaskStatus.QUEUED
        assert requeued.retry_count == 1
        assert requeued.error == "worker w1 stopped answering (lease expired)"
        assert requeued.next_attempt_at == clock.now + timedelta(seconds=2)
        assert requeued.lease_expires_at is None and requeued.completed_at is None
        # The dead worker's lease is gone.
        assert not queue.heartbeat(record.task_id, "w1", lease_s=30)
        with pytest.raises(TaskLeaseLostError):
            queue.complete(
                record.task_id, "w1", output_path=None, output_metadata={}, resource_usage={}
            )
        clock.advance(1.999)
        assert queue.claim("w2", has_gpu=False, lease_s=30) is None
        clock.advance(0.001)
        again = queue.claim("w2", has_gpu=False, lease_s=30)
        assert again is not None and again.task_id == record.task_id
        assert (again.worker_id, again.retry_count, again.progress) == ("w2", 1, 0.0)
        done = queue.complete(
            record.task_id, "w2", output_path="/out/a.jpg", output_metadata={}, resource_usage={}
        )
        assert done.status is TaskStatus.COMPLETED and done.retry_count == 1
        assert done.error is None

    def test_a_late_worker_keeps_a_lease_nobody_took(
        self, queue: TaskQueue, clock: FakeClock
    ) -> None:
        queue.submit(new_task())
        claimed = queue.claim("w1", has_gpu=False, lease_s=30)
        assert claimed is not None
        clock.advance(45)
        assert queue.heartbeat(claimed.task_id, "w1", lease_s=30)
        record = queue.get(claimed.task_id)
        assert record is not None and record.retry_count == 0

    def test_crashes_past_max_retries_fail_the_task(
        self, queue: TaskQueue, clock: FakeClock
    ) -> None:
        record, _ = queue.submit(new_task(max_retries=1))
        assert queue.claim("w1", has_gpu=False, lease_s=10) is not None
        clock.advance(11)
        assert queue.claim("w2", has_gpu=False, lease_s=10) is None  # re-queued, backing off
        clock.advance(2)
        claimed = queue.claim("w2", has_gpu=False, lease_s=10)
        assert claimed is not None and claimed.retry_count == 1
        clock.advance(11)
        assert queue.claim("w3", has_gpu=False, lease_s=10) is None
        failed = queue.get(record.task_id)
        assert failed is not None
        assert failed.status is TaskStatus.FAILED
        assert failed.retry_count == 1
        assert failed.error == "worker w2 stopped answering (lease expired)"
        assert failed.completed_at == clock.now

    def test_every_expired_lease_is_requeued_by_one_claim(
        self, queue: TaskQueue, clock: FakeClock
    ) -> None:
        for i in range(3):
            queue.submit(new_task(str(i)))
            assert queue.claim(f"w{i}", has_gpu=False, lease_s=10) is not None
        clock.advance(11)
        assert queue.claim("other", has_gpu=False, lease_s=10) is None
        assert queue.counts()[TaskStatus.QUEUED] == 3

    # --- fail and retries ----------------------------------------------------------------

    def test_fail_retries_with_capped_exponential_backoff(
        self, make_queue: QueueFactory, clock: FakeClock
    ) -> None:
        queue = make_queue(clock=clock, backoff_s=2.0, max_backoff_s=5.0)
        record, _ = queue.submit(new_task(max_retries=3))
        for attempt, delay in enumerate([2.0, 4.0, 5.0], start=1):
            claimed = queue.claim("w", has_gpu=False, lease_s=60)
            assert claimed is not None and claimed.retry_count == attempt - 1
            failed = queue.fail(record.task_id, "w", error=f"boom {attempt}")
            assert failed.status is TaskStatus.QUEUED
            assert failed.retry_count == attempt
            assert failed.error == f"boom {attempt}"
            assert failed.next_attempt_at == clock.now + timedelta(seconds=delay)
            assert queue.get(record.task_id) == failed
            clock.advance(delay - 0.5)
            assert queue.claim("w", has_gpu=False, lease_s=60) is None
            clock.advance(0.5)
        assert queue.claim("w", has_gpu=False, lease_s=60) is not None
        final = queue.fail(record.task_id, "w", error="boom 4")
        assert final.status is TaskStatus.FAILED
        assert (final.retry_count, final.error, final.completed_at) == (3, "boom 4", clock.now)
        assert queue.claim("w", has_gpu=False, lease_s=60) is None

    def test_a_non_retryable_failure_fails_at_once(self, queue: TaskQueue) -> None:
        record, _ = queue.submit(new_task(max_retries=3))
        assert queue.claim("w", has_gpu=False, lease_s=60) is not None
        failed = queue.fail(record.task_id, "w", error="not an image", retryable=False)
        assert failed.status is TaskStatus.FAILED
        assert (failed.retry_count, failed.error) == (0, "not an image")

    def test_zero_max_retries_fails_on_the_first_error(self, queue: TaskQueue) -> None:
        record, _ = queue.submit(new_task(max_retries=0))
        assert queue.claim("w", has_gpu=False, lease_s=60) is not None
        assert queue.fail(record.task_id, "w", error="x").status is TaskStatus.FAILED

    def test_fail_by_a_non_holder_is_refused(self, queue: TaskQueue) -> None:
        record, _ = queue.submit(new_task())
        with pytest.raises(TaskLeaseLostError, match="queued"):
            queue.fail(record.task_id, "w", error="x")
        assert queue.claim("w1", has_gpu=False, lease_s=60) is not None
        with pytest.raises(TaskLeaseLostError, match="w1"):
            queue.fail(record.task_id, "w2", error="x")
        with pytest.raises(TaskNotFoundError):
            queue.fail("pt-000000000000", "w1", error="x")

    # --- complete ----------------------------------------------------------------------

    def test_complete_by_the_holder(self, queue: TaskQueue, clock: FakeClock) -> None:
        record, _ = queue.submit(new_task())
        assert queue.claim("w1", has_gpu=False, lease_s=60) is not None
        clock.advance(3)
        done = queue.complete(
            record.task_id,
            "w1",
            output_path="/out/a.jpg",
            output_metadata={"width": 8, "height": 6},
            resource_usage={"cpu_seconds": 2.5},
        )
        assert done.status is TaskStatus.COMPLETED
        assert done.completed_at == clock.now
        assert (done.output_path, done.output_metadata) == ("/out/a.jpg", {"width": 8, "height": 6})
        assert done.resource_usage == {"cpu_seconds": 2.5}
        assert done.progress == 1.0 and done.lease_expires_at is None
        assert queue.get(record.task_id) == done

    def test_complete_by_a_non_holder_is_refused(self, queue: TaskQueue) -> None:
        record, _ = queue.submit(new_task())
        claimed = queue.claim("w1", has_gpu=False, lease_s=60)
        with pytest.raises(TaskLeaseLostError) as info:
            queue.complete(
                record.task_id, "w2", output_path="/x", output_metadata={}, resource_usage={}
            )
        assert (info.value.task_id, info.value.worker_id) == (record.task_id, "w2")
        assert queue.get(record.task_id) == claimed
        queue.complete(
            record.task_id, "w1", output_path=None, output_metadata={}, resource_usage={}
        )
        with pytest.raises(TaskLeaseLostError, match="completed"):
            queue.complete(
                record.task_id, "w1", output_path=None, output_metadata={}, resource_usage={}
            )
        with pytest.raises(TaskNotFoundError):
            queue.complete(
                "pt-000000000000", "w1", output_path=None, output_metadata={}, resource_usage={}
            )

    # --- cancel ------------------------------------------------------------------------

    def test_cancel_a_queued_task(self, queue: TaskQueue, clock: FakeClock) -> None:
        record, _ = queue.submit(new_task())
        clock.advance(1)
        cancelled = queue.cancel(record.task_id)
        assert cancelled.status is TaskStatus.CANCELLED
        assert cancelled.completed_at == clock.now
        assert queue.claim("w", has_gpu=True, lease_s=60) is None

    def test_cancel_a_task_waiting_for_its_retry(self, queue: TaskQueue, clock: FakeClock) -> None:
        record, _ = queue.submit(new_task())
        assert queue.claim("w", has_gpu=False, lease_s=60) is not None
        queue.fail(record.task_id, "w", error="x")
        assert queue.cancel(record.task_id).status is TaskStatus.CANCELLED
        clock.advance(3600)
        assert queue.claim("w", has_gpu=False, lease_s=60) is None

    def test_cancel_a_processing_task_stops_its_worker(self, queue: TaskQueue) -> None:
        record, _ = queue.submit(new_task())
        assert queue.claim("w1", has_gpu=False, lease_s=60) is not None
        cancelled = queue.cancel(record.task_id)
        assert cancelled.status is TaskStatus.CANCELLED
        assert cancelled.worker_id == "w1"
        assert not queue.heartbeat(record.task_id, "w1", lease_s=60)
        with pytest.raises(TaskLeaseLostError, match="cancelled"):
            queue.complete(
                record.task_id, "w1", output_path="/x", output_metadata={}, resource_usage={}
            )
        with pytest.raises(TaskLeaseLostError, match="cancelled"):
            queue.fail(record.task_id, "w1", error="x")
        assert queue.get(record.task_id) == cancelled

    def test_cancel_a_final_task_changes_nothing(self, queue: TaskQueue, clock: FakeClock) -> None:
        record, _ = queue.submit(new_task())
        assert queue.claim("w1", has_gpu=False, lease_s=60) is not None
        done = queue.complete(
            record.task_id, "w1", output_path="/x", output_metadata={}, resource_usage={}
        )
        clock.advance(5)
        assert queue.cancel(record.task_id) == done
        other, _ = queue.submit(new_task("b"))
        cancelled = queue.cancel(other.task_id)
        clock.advance(5)
        assert queue.cancel(other.task_id) == cancelled

    def test_cancel_an_unknown_task(self, queue: TaskQueue) -> None:
        with pytest.raises(TaskNotFoundError) as info:
            queue.cancel("pt-000000000000")
        assert info.value.task_id == "pt-000000000000"

    # --- list, counts, callbacks, finished_since -----------------------------------------

    def _submit_spaced(self, queue: TaskQueue, clock: FakeClock, n: int) -> list[TaskRecord]:
        records = []
        for i in range(n):
            records.append(queue.submit(new_task(str(i)))[0])
            clock.advance(1)
        return records

    def _all_pages(
        self, queue: TaskQueue, *, limit: int, status: TaskStatus | None = None
    ) -> list[list[str]]:
        pages, after = [], None
        while True:
            page, after = queue.list(status=status, limit=limit, after=after)
            pages.append([r.task_id for r in page])
            if after is None:
                return pages

    def test_list_is_newest_first_in_pages(self, queue: TaskQueue, clock: FakeClock) -> None:
        records = self._submit_spaced(queue, clock, 5)
        newest_first = [r.task_id for r in reversed(records)]
        assert self._all_pages(queue, limit=2) == [
            newest_first[0:2],
            newest_first[2:4],
            newest_first[4:],
        ]
        assert self._all_pages(queue, limit=5) == [newest_first]
        assert self._all_pages(queue, limit=50) == [newest_first]
        page, _ = queue.list()
        assert page[0] == records[-1]

    def test_list_pages_survive_new_submissions(self, queue: TaskQueue, clock: FakeClock) -> None:
        records = self._submit_spaced(queue, clock, 4)
        page, after = queue.list(limit=2)
        queue.submit(new_task("late"))
        rest, end = queue.list(limit=2, after=after)
        assert [r.task_id for r in page + rest] == [r.task_id for r in reversed(records)]
        assert end is None

    def test_list_pages_within_one_microsecond(self, queue: TaskQueue) -> None:
        ids = [queue.submit(new_task(str(i)))[0].task_id for i in range(5)]
        pages = self._all_pages(queue, limit=2)
        assert [i for page in pages for i in page] == ids[::-1]

    def test_list_filters_by_status(self, queue: TaskQueue, clock: FakeClock) -> None:
        records = self._submit_spaced(queue, clock, 6)
        for record in records[::2]:
            queue.cancel(record.task_id)
        cancelled = [r.task_id for r in reversed(records[::2])]
        queued = [r.task_id for r in reversed(records[1::2])]
        assert self._all_pages(queue, limit=2, status=TaskStatus.CANCELLED) == [
            cancelled[:2],
            cancelled[2:],
        ]
        assert sum(self._all_pages(queue, limit=1, status=TaskStatus.QUEUED), []) == queued
        assert queue.list(status=TaskStatus.FAILED) == ([], None)

    def test_list_of_an_empty_queue(self, queue: TaskQueue) -> None:
        assert queue.list() == ([], None)

    def test_list_refuses_a_cursor_it_did_not_hand_out(self, queue: TaskQueue) -> None:
        for bad in ["garbage!", "", "MTo5Ojk6OQ", "Mjo1OjU"]:
            with pytest.raises(TaskCursorError):
                queue.list(after=bad)
        with pytest.raises(ValueError, match="limit"):
            queue.list(limit=0)

    def test_counts_per_status(self, queue: TaskQueue) -> None:
        assert queue.counts() == dict.fromkeys(TaskStatus, 0)
        ids = [queue.submit(new_task(str(i)))[0].task_id for i in range(6)]
        queue.cancel(ids[0])
        for worker in ("w1", "w2", "w3"):
            assert queue.claim(worker, has_gpu=False, lease_s=60) is not None
        queue.complete(ids[1], "w1", output_path=None, output_metadata={}, resource_usage={})
        queue.fail(ids[2], "w2", error="x", retryable=False)
        assert queue.counts() == {
            TaskStatus.QUEUED: 2,
            TaskStatus.PROCESSING: 1,
            TaskStatus.COMPLETED: 1,
            TaskStatus.FAILED: 1,
            TaskStatus.CANCELLED: 1,
        }

    def test_record_callback(self, queue: TaskQueue) -> None:
        record, _ = queue.submit(new_task())
        queue.cancel(record.task_id)
        outcome = {"status_code": 200, "attempts": 1, "delivered_at": "2024-06-15T10:31:00Z"}
        queue.record_callback(record.task_id, outcome)
        stored = queue.get(record.task_id)
        assert stored is not None and stored.callback == outcome
        with pytest.raises(TaskNotFoundError):
            queue.record_callback("pt-000000000000", outcome)

    def test_finished_since(self, queue: TaskQueue, clock: FakeClock) -> None:
        early, _ = queue.submit(new_task("early"))
        queue.cancel(early.task_id)
        clock.advance(10)
        moment = clock.now
        done, _ = queue.submit(new_task("done"))
        failed, _ = queue.submit(new_task("failed", max_retries=0))
        queue.submit(new_task("waiting"))
        assert queue.claim("w1", has_gpu=False, lease_s=60) is not None
        assert queue.claim("w2", has_gpu=False, lease_s=60) is not None
        assert queue.claim("w3", has_gpu=False, lease_s=60) is not None  # stays processing
        queue.complete(done.task_id, "w1", output_path=None, output_metadata={}, resource_usage={})
        clock.advance(1)
        queue.fail(failed.task_id, "w2", error="x")
        assert [r.task_id for r in queue.finished_since(moment)] == [done.task_id, failed.task_id]
        assert [r.task_id for r in queue.finished_since(clock.now)] == [failed.task_id]
        assert len(queue.finished_since(moment - timedelta(seconds=60))) == 3
        assert queue.finished_since(clock.advance(1)) == []

    # --- atomicity under threads ---------------------------------------------------------

    def test_concurrent_claims_lease_each_task_once(self, queue: TaskQueue) -> None:
        ids = {queue.submit(new_task(str(i)))[0].task_id for i in range(60)}
        claimed: list[str] = []
        lock = threading.Lock()

        def work(worker: str) -> None:
            while (record := queue.claim(worker, has_gpu=False, lease_s=60)) is not None:
                with lock:
                    claimed.append(record.task_id)
                queue.complete(
                    record.task_id, worker, output_path=None, output_metadata={}, resource_usage={}
                )

        threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(claimed) == sorted(ids)
        assert queue.counts()[TaskStatus.COMPLETED] == 60
