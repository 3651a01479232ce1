"""The HTTP routes: thin, each a few calls to the queue through the dependencies.

Task routes need a bearer token; `/healthz` and `/metrics` do not (a load balancer and a
Prometheus scraper call them; they reveal counts, never tasks).

- `POST /api/v1/media:process`: 202 and `Location` for a new task. With an idempotency key
  (`Idempotency-Key`, else the client's `X-Request-ID`) already used for the same request:
  200, the existing task, the same `Location`, and `Idempotent-Replayed: true`; used for a
  different request: 409 `idempotency_key_reused`.
- `POST /api/v1/media/processingTasks/{task_id}:cancel`: a custom method in Google's API
  style (AIP-136). 200 with the task: cancelled, or unchanged if it had already finished.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from engine.errors import AmpError
from engine.service.deps import (
    Authenticated,
    IdempotencyKeyDep,
    MetricsDep,
    QueueDep,
    ValidatedTaskDep,
    WorkflowsDep,
)
from engine.service.errors import ApiError
from engine.service.metrics import CONTENT_TYPE
from engine.service.queue.types import NewTask, TaskRecord, TaskStatus
from engine.service.schemas import (
    ErrorBody,
    HealthPublic,
    TaskList,
    TaskPublic,
    task_public,
)

TASKS_PATH = "/api/v1/media/processingTasks"

_errors = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Malformed JSON, a bad cursor or idempotency key",
        401: "Missing or invalid bearer token",
        403: "file_path outside the input roots",
        404: "No such task",
        409: "Idempotency key reused for a different request",
        413: "Request body over max_body_bytes",
        422: "The request cannot be processed as given",
    }.items()
}

tasks = APIRouter(prefix="/api/v1", dependencies=[Authenticated], tags=["tasks"])
service = APIRouter(tags=["service"])


def location_of(task_id: str) -> str:
    return f"{TASKS_PATH}/{task_id}"


@tasks.post(
    "/media:process",
    status_code=202,
    response_model=TaskPublic,
    responses={200: {"model": TaskPublic, "description": "Idempotent replay"}, **_errors},
)
def submit_task(
    task: ValidatedTaskDep,
    key: IdempotencyKeyDep,
    queue: QueueDep,
    metrics: MetricsDep,
    response: Response,
) -> TaskPublic:
    """Queue a photo for a workflow."""
    record, created = queue.submit(task, idempotency_key=key)
    if not created:
        _check_same_request(record, task)
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    metrics.count_submission(record.workflow, created=created)
    response.headers["Location"] = location_of(record.task_id)
    return task_public(record)


@tasks.get(
    "/media/processingTasks",
    response_model=TaskList,
    responses=_errors,
)
def list_tasks(
    queue: QueueDep,
    status: Annotated[TaskStatus | None, Query(description="Only tasks in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> TaskList:
    """Tasks, newest first, a page at a time."""
    records, next_cursor = queue.list(status=status, limit=limit, after=cursor)
    return TaskList(items=[task_public(record) for record in records], next_cursor=next_cursor)


# Declared before the plain GET so the literal ":cancel" suffix is matched first.
@tasks.post(
    "/media/processingTasks/{task_id}:cancel",
    response_model=TaskPublic,
    responses=_errors,
)
def cancel_task(task_id: str, queue: QueueDep) -> TaskPublic:
    """Cancel a task; a finished task is returned unchanged."""
    _existing(queue, task_id)
    return task_public(queue.cancel(task_id))


@tasks.get(
    "/media/processingTasks/{task_id}",
    response_model=TaskPublic,
    responses=_errors,
)
def get_task(task_id: str, queue: QueueDep) -> TaskPublic:
    """One task, with its progress, resource usage and, once completed, its output."""
    return task_public(_existing(queue, task_id))


@service.get("/healthz", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def healthz(queue: QueueDep, workflows: WorkflowsDep, response: Response) -> HealthPublic:
    """Liveness and readiness: 200 when the queue answers, else 503."""
    try:
        queue.counts()
    except (AmpError, OSError):
        response.status_code = 503
        return HealthPublic(status="unavailable", queue="unavailable", workflows=sorted(workflows))
    return HealthPublic(status="ok", queue="ok", workflows=sorted(workflows))


@service.get("/metrics", response_class=PlainTextResponse)
def metrics_text(queue: QueueDep, metrics: MetricsDep) -> PlainTextResponse:
    """Prometheus text exposition format."""
    try:
        counts = queue.counts()
    except (AmpError, OSError):
        counts = None
    return PlainTextResponse(metrics.render(counts), media_type=CONTENT_TYPE)


def _existing(queue: QueueDep, task_id: str) -> TaskRecord:
    record = queue.get(task_id)
    if record is None:
        raise ApiError(404, "task_not_found", f"no task {task_id!r}", {"task_id": task_id})
    return record


def _check_same_request(record: TaskRecord, task: NewTask) -> None:
    """A replayed key must come with the request it was first used for."""
    fields = ("file_path", "workflow", "parameters", "priority", "callback_url", "metadata")
    if any(getattr(record, name) != getattr(task, name) for name in fields):
        raise ApiError(
            409,
            "idempotency_key_reused",
            f"this idempotency key already submitted task {record.task_id} with a different "
            "request; use a new Idempotency-Key (or X-Request-ID) for a new task",
            {"task_id": record.task_id},
            headers={"Location": location_of(record.task_id)},
        )
