"""The operations that change one existing task — cancel, heartbeat, complete, fail, record
a callback — written once for every store.

Each is one atomic change: a store opens its transaction (or takes its lock), reads the task
(locking its row where the database can), and hands it over as a `Change` with the
transaction's time and a way to store the new record. The state transitions themselves are
the pure functions of `lifecycle`, so the stores cannot drift apart.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.errors import TaskNotFoundError
from engine.service.queue import lifecycle
from engine.service.queue.types import TaskRecord


@dataclass(frozen=True)
class Change:
    task_id: str
    record: TaskRecord | None  # None: no such task
    now: datetime
    put: Callable[[TaskRecord], TaskRecord]

    def existing(self) -> TaskRecord:
        if self.record is None:
            raise TaskNotFoundError(self.task_id)
        return self.record


class TaskChanges(ABC):
    _policy: lifecycle.RetryPolicy

    @abstractmethod
    def _change(self, task_id: str) -> AbstractContextManager[Change]:
        """One atomic change of the task `task_id`."""

    def cancel(self, task_id: str) -> TaskRecord:
        with self._change(task_id) as change:
            return change.put(lifecycle.cancelled(change.existing(), now=change.now))

    def heartbeat(
        self,
        task_id: str,
        worker_id: str,
        *,
        lease_s: float,
        current_node: str | None = None,
        progress: float | None = None,
        resource_usage: dict[str, Any] | None = None,
    ) -> bool:
        lifecycle.check_lease_s(lease_s)
        with self._change(task_id) as change:
            record = change.record
            if record is None or not lifecycle.holds_lease(record, worker_id):
                return False
            change.put(
                lifecycle.extended(
                    record,
                    now=change.now,
                    lease_s=lease_s,
                    current_node=current_node,
                    progress=progress,
                    resource_usage=resource_usage,
                )
            )
            return True

    def complete(
        self,
        task_id: str,
        worker_id: str,
        *,
        output_path: str | None,
        output_metadata: dict[str, Any],
        resource_usage: dict[str, Any],
    ) -> TaskRecord:
        with self._change(task_id) as change:
            record = change.existing()
            lifecycle.check_holder(record, worker_id)
            return change.put(
                lifecycle.completed(
                    record,
                    now=change.now,
                    output_path=output_path,
                    output_metadata=output_metadata,
                    resource_usage=resource_usage,
                )
            )

    def fail(
        self, task_id: str, worker_id: str, *, error: str, retryable: bool = True
    ) -> TaskRecord:
        with self._change(task_id) as change:
            record = change.existing()
            lifecycle.check_holder(record, worker_id)
            return change.put(
                lifecycle.after_failure(
                    record, now=change.now, error=error, retryable=retryable, policy=self._policy
                )
            )

    def record_callback(self, task_id: str, outcome: dict[str, Any]) -> None:
        with self._change(task_id) as change:
            change.put(lifecycle.with_callback(change.existing(), outcome))
