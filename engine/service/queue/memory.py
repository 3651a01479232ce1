"""The in-memory twin of the SQLite queue, for unit tests of the service and the workers.

Same contract and same transitions (`lifecycle`); one lock makes every method atomic.
Records go in and come out as deep copies, as they would through SQLite, so a caller that
mutates a returned dict cannot change the stored task. Nothing survives the process.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from engine.service.queue import cursor, lifecycle
from engine.service.queue.changes import Change, TaskChanges
from engine.service.queue.clock import Clock, to_us, utc_now
from engine.service.queue.types import NewTask, TaskRecord, TaskStatus


class MemoryTaskQueue(TaskChanges):
    def __init__(
        self,
        *,
        clock: Clock = utc_now,
        backoff_s: float = 2.0,
        max_backoff_s: float = 300.0,
    ) -> None:
        self._clock = clock
        self._policy = lifecycle.RetryPolicy(backoff_s, max_backoff_s)
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskRecord] = {}
        self._sequence: dict[str, int] = {}  # submission order, FIFO's tie-breaker
        self._by_key: dict[str, str] = {}

    def submit(
        self, task: NewTask, *, idempotency_key: str | None = None
    ) -> tuple[TaskRecord, bool]:
        with self._lock:
            if idempotency_key is not None and idempotency_key in self._by_key:
                return copy.deepcopy(self._tasks[self._by_key[idempotency_key]]), False
            task_id = lifecycle.new_task_id()
            while task_id in self._tasks:
                task_id = lifecycle.new_task_id()
            record = lifecycle.new_record(
                task, task_id, idempotency_key=idempotency_key, now=self._clock()
            )
            self._sequence[task_id] = len(self._sequence)
            if idempotency_key is not None:
                self._by_key[idempotency_key] = task_id
            return self._put(record), True

    def get(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            record = self._tasks.get(task_id)
            return None if record is None else copy.deepcopy(record)

    def list(
        self, *, status: TaskStatus | None = None, limit: int = 50, after: str | None = None
    ) -> tuple[list[TaskRecord], str | None]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        start = None if after is None else cursor.decode(after)
        with self._lock:
            newest_first = sorted(self._tasks.values(), key=self._position, reverse=True)
            page: list[TaskRecord] = []
            for record in newest_first:
                if start is not None and not self._position(record) < start:
                    continue
                if status is not None and record.status is not status:
                    continue
                if len(page) == limit:
                    return page, cursor.encode(self._position(page[-1]))
                page.append(copy.deepcopy(record))
            return page, None

    def claim(self, worker_id: str, *, has_gpu: bool, lease_s: float) -> TaskRecord | None:
        lifecycle.check_lease_s(lease_s)
        with self._lock:
            now = self._clock()
            for record in list(self._tasks.values()):
                if lifecycle.lease_expired(record, now=now):
                    self._put(lifecycle.after_lease_expired(record, now=now, policy=self._policy))
            candidates = [
                r for r in self._tasks.values() if lifecycle.runnable(r, now=now, has_gpu=has_gpu)
            ]
            if not candidates:
                return None
            best = min(
                candidates, key=lambda r: (-r.priority, r.queued_at, self._sequence[r.task_id])
            )
            return self._put(lifecycle.leased(best, worker_id, now=now, lease_s=lease_s))

    def close(self) -> None:
        """Nothing to release: the tasks live in this object."""

    def counts(self) -> dict[TaskStatus, int]:
        with self._lock:
            counts = dict.fromkeys(TaskStatus, 0)
            for record in self._tasks.values():
                counts[record.status] += 1
            return counts

    def finished_since(self, moment: datetime) -> Sequence[TaskRecord]:
        with self._lock:
            done = [
                r
                for r in self._tasks.values()
                if r.status.final and r.completed_at is not None and r.completed_at >= moment
            ]
            done.sort(key=lambda r: (r.completed_at, self._sequence[r.task_id]))
            return copy.deepcopy(done)

    @contextmanager
    def _change(self, task_id: str) -> Iterator[Change]:
        with self._lock:
            yield Change(task_id, self._tasks.get(task_id), self._clock(), self._put)

    def _put(self, record: TaskRecord) -> TaskRecord:
        self._tasks[record.task_id] = copy.deepcopy(record)
        return copy.deepcopy(record)

    def _position(self, record: TaskRecord) -> cursor.PagePosition:
        return cursor.PagePosition(to_us(record.queued_at), self._sequence[record.task_id])
