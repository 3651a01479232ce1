"""`amp worker`: lease tasks from the queue and run their workflows, one at a time.

While a task runs, a heartbeat thread extends its lease every `heartbeat_s` and reports the
current node, the progress (nodes done / nodes) and the resource usage so far; a refused
heartbeat (the task was cancelled, or the lease was lost) stops the task at the next node
boundary and its work is discarded. A worker killed outright stops heartbeating: its lease
expires and the queue hands the task to another worker, counting a retry. Outputs are written
atomically by the last node, so a dead worker never leaves a partial file.

Retries: an input that cannot work (a missing or corrupt photo, a bad option) fails at once;
anything else (a model that failed to load, the device, a bug) is retried with backoff.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import AmpError, InputError, TaskLeaseLostError
from engine.resources import ResourceMeter, ResourceUsage
from engine.service.models_cache import ModelCache
from engine.service.nodes import NODES, TaskContext, WorkerConfig
from engine.service.queue.types import TaskQueue, TaskRecord, TaskStatus
from engine.service.workflows import Workflow

log = logging.getLogger(__name__)


class TaskAborted(Exception):
    """The queue refused a heartbeat: the task was cancelled or its lease went elsewhere."""


def default_worker_id() -> str:
    """Unique per worker process: a restarted worker never answers for its dead predecessor."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def usage_document(usage: ResourceUsage) -> dict[str, Any]:
    """The task's `resource_usage`: measured figures only; no GPU figure without a GPU."""
    document: dict[str, Any] = {
        "cpu_seconds": round(usage.cpu_seconds, 3),
        "memory_mb_seconds": round(usage.memory_mb_seconds, 1),
        "storage_read_bytes": usage.storage_read_bytes,
        "storage_write_bytes": usage.storage_write_bytes,
        "wall_seconds": round(usage.wall_seconds, 3),
    }
    if usage.gpu_utilization is not None:
        document["gpu_utilization"] = round(usage.gpu_utilization, 3)
    return document


class Worker:
    def __init__(
        self,
        queue: TaskQueue,
        workflows: Mapping[str, Workflow],
        config: WorkerConfig,
        models: ModelCache,
        *,
        worker_id: str | None = None,
        lease_s: float = 30.0,
        heartbeat_s: float = 5.0,
        poll_s: float = 0.5,
        on_final: Callable[[TaskRecord], None] | None = None,
    ) -> None:
        if heartbeat_s >= lease_s:
            raise ValueError("the heartbeat must come well before the lease expires")
        self.queue = queue
        self.workflows = workflows
        self.config = config
        self.models = models
        self.worker_id = worker_id or default_worker_id()
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.poll_s = poll_s
        self.on_final = on_final

    def run(self, stop: threading.Event, *, max_tasks: int | None = None) -> int:
        """Process tasks until `stop` is set (or `max_tasks` were done); how many ran."""
        done = 0
        while not stop.is_set() and (max_tasks is None or done < max_tasks):
            if self.run_one():
                done += 1
            else:
                stop.wait(self.poll_s)
        return done

    def run_one(self) -> bool:
        task = self.queue.claim(self.worker_id, has_gpu=self.models.has_gpu, lease_s=self.lease_s)
        if task is None:
            return False
        log.info("task %s (%s) leased by %s", task.task_id, task.workflow, self.worker_id)
        try:
            final = self._execute(task)
        except TaskLeaseLostError as exc:  # cancelled or taken over while finishing
            log.warning("task %s: result discarded: %s", task.task_id, exc)
            return True
        if final is not None and final.status.final and self.on_final is not None:
            self.on_final(final)
        return True

    def _execute(self, task: TaskRecord) -> TaskRecord | None:
        workflow = self.workflows.get(task.workflow)
        gpu_index = (self.models.device.index or 0) if self.models.has_gpu else None
        with ResourceMeter(gpu_index=gpu_index) as meter:
            context = TaskContext(task, self.config, self.models, meter.io)
            beat = _Heartbeat(self, task, meter)
            try:
                if workflow is None:
                    raise InputError(f"unknown workflow {task.workflow!r}")
                with beat:
                    for number, node in enumerate(workflow.nodes):
                        beat.at(node.name, number / len(workflow.nodes))
                        NODES[node.kind](context)
                    beat.at(None, 1.0)
            except TaskAborted:
                log.warning("task %s aborted: cancelled or lease lost", task.task_id)
                return None
            except AmpError as exc:
                return self._fail(task, str(exc), retryable=not isinstance(exc, InputError))
            except Exception as exc:  # noqa: BLE001 - a bug is retried, and reported
                log.exception("task %s failed", task.task_id)
                return self._fail(task, f"internal error: {exc!r}", retryable=True)
        return self.queue.complete(
            task.task_id,
            self.worker_id,
            output_path=str(context.output_path) if context.output_path else None,
            output_metadata=context.output_metadata(),
            resource_usage=usage_document(meter.usage()),
        )

    def _fail(self, task: TaskRecord, error: str, *, retryable: bool) -> TaskRecord:
        record = self.queue.fail(task.task_id, self.worker_id, error=error, retryable=retryable)
        if record.status == TaskStatus.QUEUED:
            log.warning("task %s will be retried: %s", task.task_id, error)
        return record


class _Heartbeat:
    """Extends the lease and reports progress from a thread while the nodes run."""

    def __init__(self, worker: Worker, task: TaskRecord, meter: ResourceMeter) -> None:
        self._worker = worker
        self._task = task
        self._meter = meter
        self._node: str | None = None
        self._progress = 0.0
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, node: str | None, progress: float) -> None:
        """Entering `node` (None: all done); raises TaskAborted if the lease was lost."""
        if self._lost.is_set():
            raise TaskAborted(self._task.task_id)
        self._node, self._progress = node, progress
        self._beat()

    def _run(self) -> None:
        while not self._stop.wait(self._worker.heartbeat_s):
            self._beat()

    def _beat(self) -> None:
        if self._lost.is_set():
            return
        try:
            alive = self._worker.queue.heartbeat(
                self._task.task_id,
                self._worker.worker_id,
                lease_s=self._worker.lease_s,
                current_node=self._node,
                progress=self._progress,
                resource_usage=usage_document(self._meter.usage()),
            )
        except Exception:  # noqa: BLE001 - a transient queue error: the next beat retries
            log.exception("heartbeat for %s failed", self._task.task_id)
            return
        if not alive:
            self._lost.set()
