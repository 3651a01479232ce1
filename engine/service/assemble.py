"""Build a worker from the service's Settings: queue, workflows, models, callbacks."""

from __future__ import annotations

import logging
from collections.abc import Callable

from engine.faces.factory import DetectorConfig, RecognizerConfig
from engine.service.callbacks import CallbackPolicy, deliver
from engine.service.models_cache import ModelCache
from engine.service.nodes import WorkerConfig
from engine.service.paths import check_callback_url
from engine.service.queue.types import TaskQueue, TaskRecord
from engine.service.schemas import task_public
from engine.service.settings import Settings
from engine.service.worker import Worker
from engine.service.workflows import all_workflows

log = logging.getLogger(__name__)


def build_worker(settings: Settings, queue: TaskQueue, *, worker_id: str | None = None) -> Worker:
    faces = settings.faces
    models = ModelCache(
        device=settings.enhance.device,
        precision=settings.enhance.precision,
        detector=DetectorConfig(
            kind=faces.detector,
            model=faces.detector_model,
            providers=tuple(faces.providers) if faces.providers else None,
        ),
        recognizer=RecognizerConfig(
            kind=faces.recognizer,
            model=faces.recognizer_model,
            providers=tuple(faces.providers) if faces.providers else None,
        ),
    )
    config = WorkerConfig(
        buckets=settings.buckets, index_dir=settings.index_dir, default_model=settings.enhance.model
    )
    return Worker(
        queue,
        all_workflows(settings.workflows_dir),
        config,
        models,
        worker_id=worker_id,
        lease_s=settings.lease_s,
        heartbeat_s=settings.heartbeat_s,
        on_final=callback_sender(settings, queue),
    )


def callback_sender(settings: Settings, queue: TaskQueue) -> Callable[[TaskRecord], None]:
    """POST each final task to its callback URL and record the outcome on the task."""
    secret = settings.callback_secret.get_secret_value() if settings.callback_secret else ""
    policy = CallbackPolicy(
        secret=secret,
        allowed_hosts=tuple(settings.callback_allowed_hosts),
        attempts=settings.callback_attempts,
        timeout_s=settings.callback_timeout_s,
    )

    def send(task: TaskRecord) -> None:
        if not task.callback_url:
            return
        if not secret:
            log.warning(
                "task %s has a callback but no AMP_CALLBACK_SECRET is set: unsigned", task.task_id
            )
        document = task_public(task).model_dump(mode="json", exclude_none=True)
        outcome = deliver(task.callback_url, document, policy, check_url=check_callback_url)
        queue.record_callback(task.task_id, outcome)

    return send
