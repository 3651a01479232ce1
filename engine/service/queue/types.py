"""A processing task as the queue stores it, and the interface every queue store implements.

Times are timezone-aware UTC datetimes. Figures in `resource_usage` and `output_metadata`
are written by workers from measurements; the queue stores them as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol


class TaskStatus(str, Enum):
    QUEUED = "queued"  # waiting for a worker (also between retries)
    PROCESSING = "processing"  # leased by a worker
    COMPLETED = "completed"
    FAILED = "failed"  # the last attempt failed and no retry is left
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


@dataclass(frozen=True)
class NewTask:
    """What a submission asks for, already validated by the API."""

    file_path: str  # absolute, resolved, under an input root
    workflow: str
    parameters: dict[str, Any] = field(default_factory=dict)
    priority: int = 5  # 1..10, higher runs first; FIFO within a priority
    max_retries: int = 3
    callback_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    resource_requirements: dict[str, Any] = field(default_factory=dict)  # e.g. gpu_required
    request_id: str | None = None


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    file_path: str
    workflow: str
    parameters: dict[str, Any]
    priority: int
    status: TaskStatus
    queued_at: datetime
    max_retries: int
    retry_count: int = 0  # failed attempts so far that were retried
    callback_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    resource_requirements: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    idempotency_key: str | None = None
    started_at: datetime | None = None  # of the current or last attempt
    completed_at: datetime | None = None  # when it reached a final status
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    next_attempt_at: datetime | None = None  # a retry waits for its backoff
    current_node: str | None = None
    progress: float = 0.0
    output_path: str | None = None
    error: str | None = None
    resource_usage: dict[str, Any] = field(default_factory=dict)
    output_metadata: dict[str, Any] = field(default_factory=dict)
    callback: dict[str, Any] = field(default_factory=dict)  # outcome of the final callback


class TaskQueue(Protocol):
    """The queue's contract; the SQLite store is the embedded default, a shared database can
    implement it for several worker machines. Every method is atomic."""

    def submit(
        self, task: NewTask, *, idempotency_key: str | None = None
    ) -> tuple[TaskRecord, bool]:
        """Queue a task; with a key already used, the existing task and False instead."""
        ...

    def get(self, task_id: str) -> TaskRecord | None: ...

    def list(
        self, *, status: TaskStatus | None = None, limit: int = 50, after: str | None = None
    ) -> tuple[list[TaskRecord], str | None]:
        """Newest first; `after` is the cursor the previous page returned (None: the end)."""
        ...

    def cancel(self, task_id: str) -> TaskRecord:
        """Queued: cancelled at once. Processing: cancelled, and the worker's next heartbeat
        is refused so it stops. Final: unchanged."""
        ...

    def claim(self, worker_id: str, *, has_gpu: bool, lease_s: float) -> TaskRecord | None:
        """Lease the most urgent runnable task (priority, then FIFO); first re-queue every
        task whose lease expired (its worker died). GPU tasks only go to GPU workers."""
        ...

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
        """Extend the lease and record progress; False when the lease is lost or the task was
        cancelled: the worker must stop and discard its work."""
        ...

    def complete(
        self,
        task_id: str,
        worker_id: str,
        *,
        output_path: str | None,
        output_metadata: dict[str, Any],
        resource_usage: dict[str, Any],
    ) -> TaskRecord: ...

    def fail(
        self, task_id: str, worker_id: str, *, error: str, retryable: bool = True
    ) -> TaskRecord:
        """Re-queue with exponential backoff while retry_count < max_retries, else failed."""
        ...

    def record_callback(self, task_id: str, outcome: dict[str, Any]) -> None: ...

    def counts(self) -> dict[TaskStatus, int]: ...

    def finished_since(self, moment: datetime) -> Sequence[TaskRecord]: ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
