"""The API's documents, by role: `TaskCreate` (a submission), `TaskPublic` (a task as clients
see it), `TaskList`, `ErrorBody`; and `task_public`, the pure function from the queue's
`TaskRecord` to `TaskPublic`.

Conventions of `TaskPublic` (PRODUCT.md section A):

- Times are UTC, ISO 8601 to the second with a `Z`: `2023-06-15T10:30:45Z`.
- `duration` is `completed_at - started_at` of the final attempt (time spent running, not
  waiting in the queue), written as in PRODUCT.md's `PT7m15s`: `PT`, then hours, minutes and
  seconds with lower-case unit letters, zero parts left out (`PT2h5s`, `PT0s`); seconds under
  a minute keep up to 3 decimals (`PT0.412s`), longer durations are whole seconds.
- Fields with no value yet (`started_at` of a queued task, `output_metadata` before the task
  completes, `gpu_utilization` on a CPU worker) are absent, not null.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
)

from engine.service.queue.types import TaskRecord, TaskStatus

MAX_METADATA_KEYS = 32
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 1024
SUBMITTED_PATH_KEY = (
    "submitted_file_path"  # in NewTask.parameters: file_path as the client wrote it
)


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


UtcTime = Annotated[datetime, PlainSerializer(_utc_text, return_type=str, when_used="json")]


def iso_duration(seconds: float) -> str:
    """`PT7m15s`-style ISO 8601 duration of a non-negative number of seconds (module doc)."""
    seconds = max(0.0, round(seconds, 3))
    if seconds < 60:
        text = f"{seconds:.3f}".rstrip("0").rstrip(".")
        return f"PT{text}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "PT" + "".join(parts)


# --- Submission ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageEnhanceParams(_Strict):
    """The `ai/image-enhance` node (Real-ESRGAN). Unset fields take the workflow's defaults,
    then the service's `[enhance]` settings."""

    scale_factor: float | None = Field(
        None, gt=0, le=8, description="Output scale (e.g. 2, 4, 1.5); unset: the model's own."
    )
    denoise_strength: float | None = Field(
        None, ge=0, le=1, description="realesr-general-x4v3 only: 0 keeps noise, 1 removes most."
    )
    model: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        None, description="A model name from `amp models list`."
    )
    tile: Literal["auto"] | Annotated[int, Field(ge=0, le=8192)] | None = Field(
        None, description="auto, 0 (whole image) or a tile size in pixels."
    )


class FaceDetectParams(_Strict):
    """The `ai/face-detect` node."""

    det_thresh: float | None = Field(None, gt=0, lt=1, description="Detection score threshold.")
    tiles: bool | None = Field(
        None, description="Also scan 640-px tiles of the full image for small faces (slower)."
    )


class SimilarityParams(_Strict):
    """The `similarity` node: other photos of the same people, from the local face index."""

    top_k: int | None = Field(None, ge=1, le=100, description="Similar images to return.")
    min_similarity: float | None = Field(
        None, ge=-1, le=1, description="Cosine similarity below which a match is dropped."
    )


class StorageParams(_Strict):
    """The `store` node: where the output goes."""

    bucket: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        None, description="A configured bucket name; it maps to an output root folder."
    )
    path_template: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        None,
        description="Path under the bucket's root; fields {year} {month} {day} {filename} "
        "{stem} {ext}. It cannot leave the root.",
    )


class Parameters(_Strict):
    """Options per node kind; each applies only to a workflow that has that node."""

    image_enhance: ImageEnhanceParams | None = None
    face_detect: FaceDetectParams | None = None
    similarity: SimilarityParams | None = None
    storage: StorageParams | None = None


MetadataValue = (
    Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_CHARS)] | int | float | bool
)


class TaskCreate(_Strict):
    """`POST /api/v1/media:process`."""

    file_path: Annotated[str, StringConstraints(min_length=1, max_length=4096)] = Field(
        description="Absolute path of the photo, under one of the service's input roots."
    )
    workflow: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="A workflow name, e.g. nas-photo-processing."
    )
    parameters: Parameters = Field(default_factory=Parameters)
    priority: int = Field(5, ge=1, le=10, description="1..10, higher runs first.")
    max_retries: int | None = Field(
        None, ge=0, le=20, description="Failed attempts to retry; unset: the service default."
    )
    callback_url: HttpUrl | None = Field(
        None, description="Receives the final task document (POST, JSON)."
    )
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict,
        description=f"Echoed back; at most {MAX_METADATA_KEYS} keys of at most "
        f"{MAX_METADATA_KEY_CHARS} characters.",
    )

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        if len(metadata) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} metadata keys, got {len(metadata)}")
        for key in metadata:
            if not key or len(key) > MAX_METADATA_KEY_CHARS:
                raise ValueError(
                    f"metadata key {key[:80]!r} must be 1..{MAX_METADATA_KEY_CHARS} characters"
                )
        return metadata


# --- The task document --------------------------------------------------------------------


class _Sparse(BaseModel):
    """Serialized without the fields that have no value (None): absent, not null."""

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # No return annotation: it would replace the JSON schema of every subclass.
        return {key: value for key, value in handler(self).items() if value is not None}


class _Open(_Sparse):
    """Worker-written figures: documented fields, and whatever else a worker measures."""

    model_config = ConfigDict(extra="allow")


class ResourceRequirements(_Open):
    """What the workflow declares it needs (its TOML `[resources]`); not a measurement."""

    gpu_required: bool | None = Field(
        None, description="True: only a GPU worker may run it. False: any worker."
    )
    accelerator_type: str | None = Field(
        None, description="The accelerator the workflow is tuned for, preferred when present."
    )
    memory_mb: int | None = Field(None, description="Host memory (MiB) a worker should have free.")
    cpu_millis: int | None = Field(
        None, description="CPU a worker should have free (1000 = 1 core)."
    )


class ResourceUsage(_Open):
    """What the task cost so far, measured by the worker (engine/resources.py)."""

    cpu_seconds: float | None = Field(
        None, description="User + system CPU time of the worker process spent on this task."
    )
    memory_mb_seconds: float | None = Field(
        None, description="Resident memory (MiB) integrated over the task's run time."
    )
    gpu_utilization: float | None = Field(
        None, description="Mean NVML 'GPU busy' ratio (0..1); absent without an NVIDIA GPU."
    )
    storage_read_bytes: int | None = Field(None, description="Bytes of images and weights read.")
    storage_write_bytes: int | None = Field(None, description="Bytes of outputs written.")


class Tag(_Open):
    tag: str
    confidence: float


class FaceData(_Open):
    index: int
    face_id: str | None = None
    confidence: float | None = None
    bounding_box: list[float] | None = Field(
        None, description="[x1, y1, x2, y2] in upright original pixels."
    )


class SimilarImage(_Open):
    image_id: str | None = None
    path: str | None = None
    similarity: float | None = Field(None, description="Cosine similarity of the best face match.")


class OutputMetadata(_Open):
    width: int | None = None
    height: int | None = None
    format: str | None = None
    size: int | None = Field(None, description="Bytes of the output file.")
    quality_score: float | None = None
    tags: list[Tag] | None = None
    face_data: list[FaceData] | None = None
    similar_images: list[SimilarImage] | None = None


class CallbackOutcome(_Open):
    """How delivering the final document to `callback_url` went (engine/service/callbacks.py)."""

    status: str | None = Field(None, description="delivered, failed or refused.")
    attempts: int | None = Field(None, description="POSTs made (0 when the host was refused).")
    http_status: int | None = Field(None, description="The receiver's last HTTP status.")
    error: str | None = None


class TaskPublic(_Sparse):
    """A processing task as `GET /api/v1/media/processingTasks/{task_id}` returns it."""

    task_id: str
    file_path: str = Field(description="The file as submitted.")
    workflow: str
    status: TaskStatus
    queued_at: UtcTime
    started_at: UtcTime | None = None
    completed_at: UtcTime | None = None
    duration: str | None = Field(None, description="completed_at - started_at, e.g. PT7m15s.")
    priority: int
    callback_url: str | None = None
    metadata: dict[str, Any] | None = None
    worker_id: str | None = None
    current_node: str | None = Field(
        None, description="The node running now, e.g. ai/image-enhance."
    )
    progress: float | None = Field(None, description="0..1, while processing and when completed.")
    input_path: str | None = Field(None, description="The resolved file the worker reads.")
    output_path: str | None = None
    error: str | None = None
    retry_count: int
    max_retries: int
    resource_requirements: ResourceRequirements | None = None
    resource_usage: ResourceUsage | None = None
    output_metadata: OutputMetadata | None = None
    callback: CallbackOutcome | None = None


class TaskList(BaseModel):
    items: list[TaskPublic]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable, e.g. file_not_found.")
    message: str = Field(description="What failed and what to do about it.")
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class HealthPublic(BaseModel):
    status: Literal["ok", "unavailable"]
    queue: Literal["ok", "unavailable"]
    workflows: list[str]


def task_public(record: TaskRecord) -> TaskPublic:
    """The client's view of a queue record: pure, no clock and no I/O."""
    duration = None
    if record.completed_at is not None and record.started_at is not None:
        duration = iso_duration((record.completed_at - record.started_at).total_seconds())
    shows_progress = record.status in (TaskStatus.PROCESSING, TaskStatus.COMPLETED)
    return TaskPublic(
        task_id=record.task_id,
        file_path=str(record.parameters.get(SUBMITTED_PATH_KEY, record.file_path)),
        workflow=record.workflow,
        status=record.status,
        queued_at=record.queued_at,
        started_at=record.started_at,
        completed_at=record.completed_at,
        duration=duration,
        priority=record.priority,
        callback_url=record.callback_url,
        metadata=record.metadata or None,
        worker_id=record.worker_id,
        current_node=record.current_node,
        progress=record.progress if shows_progress else None,
        input_path=record.file_path if record.started_at is not None else None,
        output_path=record.output_path,
        error=record.error,
        retry_count=record.retry_count,
        max_retries=record.max_retries,
        resource_requirements=_model_or_none(ResourceRequirements, record.resource_requirements),
        resource_usage=_model_or_none(ResourceUsage, record.resource_usage),
        output_metadata=_model_or_none(OutputMetadata, record.output_metadata),
        callback=_model_or_none(CallbackOutcome, record.callback),
    )


def _model_or_none(model: type[_Open], values: dict[str, Any]) -> Any:
    return model.model_validate(values) if values else None
