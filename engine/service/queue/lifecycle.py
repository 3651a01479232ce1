"""A task's life as pure transitions: a record and the time in, the next record out.

Both stores (SQLite, memory) apply these same functions inside their own atomic step, so
they cannot drift apart in what a retry, an expired lease or a cancel does. No clock, file
or lock in here.

Choices every store shares:

- A crash counts as a failed attempt: an expired lease re-queues the task with
  `retry_count + 1` and a backoff, or fails it when no retry is left, exactly like `fail`.
- Backoff before retry n (n = the new retry_count, 1-based) is
  `min(max_backoff_s, backoff_s * 2 ** (n - 1))`: 2 s, 4 s, 8 s... with the defaults. No
  jitter: claims are pulled by idle workers, not pushed at a shared service, so there is no
  thundering herd to spread out, and tests stay exact under a fake clock.
- `error` keeps the last failed attempt's message while the task waits and runs again (a
  poller sees why it is being retried); a completed task has `error` None, and its
  `retry_count` says how many attempts failed first.
- A lease is lost only when another transition took the task away (cancel, or a claim that
  found the lease expired). A worker whose lease ran out but that nobody re-queued yet may
  still heartbeat or finish: nobody else is running its task.
- Worker ids must be unique per worker process (host, pid and a random part): the lease is
  held by id, so a restarted worker reusing an id could answer for its dead predecessor.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from engine.errors import TaskLeaseLostError
from engine.service.queue.types import NewTask, TaskRecord, TaskStatus

TASK_ID_PREFIX = "pt-"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts, capped."""

    backoff_s: float = 2.0
    max_backoff_s: float = 300.0

    def __post_init__(self) -> None:
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("backoff_s and max_backoff_s must be >= 0")

    def delay_s(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1 for the first retry)."""
        # Capping the exponent first keeps 2 ** n from overflowing a float for huge n.
        exponent = min(max(retry_number - 1, 0), 64)
        return min(self.max_backoff_s, self.backoff_s * 2.0**exponent)


def new_task_id() -> str:
    """`pt-` and 12 random hex digits; stores check uniqueness and draw again on a clash."""
    return TASK_ID_PREFIX + secrets.token_hex(6)


def gpu_required(requirements: dict[str, Any]) -> bool:
    return bool(requirements.get("gpu_required", False))


def new_record(
    task: NewTask, task_id: str, *, idempotency_key: str | None, now: datetime
) -> TaskRecord:
    return TaskRecord(
        task_id=task_id,
        file_path=task.file_path,
        workflow=task.workflow,
        parameters=dict(task.parameters),
        priority=task.priority,
        status=TaskStatus.QUEUED,
        queued_at=now,
        max_retries=task.max_retries,
        callback_url=task.callback_url,
        metadata=dict(task.metadata),
        resource_requirements=dict(task.resource_requirements),
        request_id=task.request_id,
        idempotency_key=idempotency_key,
    )


def runnable(record: TaskRecord, *, now: datetime, has_gpu: bool) -> bool:
    """Whether a claim by this worker may take the task now."""
    if record.status is not TaskStatus.QUEUED:
        return False
    if record.next_attempt_at is not None and record.next_attempt_at > now:
        return False
    return has_gpu or not gpu_required(record.resource_requirements)


def lease_expired(record: TaskRecord, *, now: datetime) -> bool:
    return (
        record.status is TaskStatus.PROCESSING
        and record.lease_expires_at is not None
        and record.lease_expires_at < now
    )


def leased(record: TaskRecord, worker_id: str, *, now: datetime, lease_s: float) -> TaskRecord:
    """The task handed to a worker: a fresh attempt, its progress reset."""
    return replace(
        record,
        status=TaskStatus.PROCESSING,
        worker_id=worker_id,
        started_at=now,
        lease_expires_at=now + _seconds(lease_s),
        next_attempt_at=None,
        current_node=None,
        progress=0.0,
        resource_usage={},
    )


def after_failure(
    record: TaskRecord, *, now: datetime, error: str, retryable: bool, policy: RetryPolicy
) -> TaskRecord:
    """Back to the queue after a backoff while retries are left, else failed for good."""
    if retryable and record.retry_count < record.max_retries:
        retry_count = record.retry_count + 1
        return replace(
            record,
            status=TaskStatus.QUEUED,
            retry_count=retry_count,
            next_attempt_at=now + _seconds(policy.delay_s(retry_count)),
            lease_expires_at=None,
            error=error,
        )
    return replace(
        record, status=TaskStatus.FAILED, completed_at=now, lease_expires_at=None, error=error
    )


def after_lease_expired(record: TaskRecord, *, now: datetime, policy: RetryPolicy) -> TaskRecord:
    """The worker died (or hung) holding the task: a failed attempt like any other."""
    error = f"worker {record.worker_id} stopped answering (lease expired)"
    return after_failure(record, now=now, error=error, retryable=True, policy=policy)


def check_holder(record: TaskRecord, worker_id: str) -> None:
    """Raise unless `worker_id` holds the task's lease right now."""
    if record.status is not TaskStatus.PROCESSING:
        raise TaskLeaseLostError(record.task_id, worker_id, f"the task is {record.status.value}")
    if record.worker_id != worker_id:
        raise TaskLeaseLostError(
            record.task_id, worker_id, f"it is leased to worker {record.worker_id}"
        )


def holds_lease(record: TaskRecord, worker_id: str) -> bool:
    return record.status is TaskStatus.PROCESSING and record.worker_id == worker_id


def extended(
    record: TaskRecord,
    *,
    now: datetime,
    lease_s: float,
    current_node: str | None,
    progress: float | None,
    resource_usage: dict[str, Any] | None,
) -> TaskRecord:
    """A heartbeat: the lease runs `lease_s` from now; None leaves a figure as it was."""
    return replace(
        record,
        lease_expires_at=now + _seconds(lease_s),
        current_node=record.current_node if current_node is None else current_node,
        progress=record.progress if progress is None else progress,
        resource_usage=record.resource_usage if resource_usage is None else dict(resource_usage),
    )


def completed(
    record: TaskRecord,
    *,
    now: datetime,
    output_path: str | None,
    output_metadata: dict[str, Any],
    resource_usage: dict[str, Any],
) -> TaskRecord:
    return replace(
        record,
        status=TaskStatus.COMPLETED,
        completed_at=now,
        lease_expires_at=None,
        progress=1.0,
        output_path=output_path,
        output_metadata=dict(output_metadata),
        resource_usage=dict(resource_usage),
        error=None,
    )


def cancelled(record: TaskRecord, *, now: datetime) -> TaskRecord:
    """Queued or processing: cancelled now (a worker learns it at its next heartbeat).
    Final: unchanged. `worker_id` stays, to say who was running it."""
    if record.status.final:
        return record
    return replace(
        record,
        status=TaskStatus.CANCELLED,
        completed_at=now,
        lease_expires_at=None,
        next_attempt_at=None,
    )


def with_callback(record: TaskRecord, outcome: dict[str, Any]) -> TaskRecord:
    return replace(record, callback=dict(outcome))


def check_lease_s(lease_s: float) -> None:
    if not lease_s > 0:
        raise ValueError(f"lease_s must be > 0, got {lease_s}")


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
