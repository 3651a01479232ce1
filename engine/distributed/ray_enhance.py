"""`amp enhance --ray`: the local batch engine's per-file work on a Ray Data actor pool.

    driver: [index, path] rows ─▶ map_batches(EnhanceWorker, actor pool) ─▶ result rows ─▶
            progress callback, BatchReport (input order), per-node figures

Each actor loads the model once (in `__init__`) and runs `engine.enhance.batch.run_batch` on
its batch of a few files, so every file goes through exactly the local path: probe → skip an
existing output → decode → enhance → encode → atomic write under the same root and path
template. A worker process that dies mid-batch is restarted and its batch retried: outputs
already renamed into place are skipped, the rest are written, each exactly once. The driver
only ever sees one result per file (it drops a duplicate and reports a lost one as failed).

Restarts and retries are Ray Data's actor-pool defaults (`max_restarts=-1`,
`max_task_retries=-1`: without limit; Ray 2.60 deprecates passing them to `map_batches`). A
file that kills every worker that opens it is therefore retried until the run is stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.device import resolve_device, resolve_dtype
from engine.distributed.ray_runtime import (
    ActorPlan,
    CrashOnce,
    NodeFigures,
    NodeTally,
    WorkerIdentity,
    import_ray,
    plan_actors,
    ray_session,
    run_failed,
    set_torch_threads,
    worker_identity,
)
from engine.enhance.batch import STAGES, BatchReport, EnhanceJob, FileResult, Status, run_batch
from engine.enhance.models import load_enhancement_model
from engine.enhance.upscaler import TileSettings, Upscaler
from engine.resources import IOCounter

log = logging.getLogger(__name__)

DEFAULT_BATCH_FILES = 2
# Blocks of the input list: small enough that work spreads evenly and progress streams,
# few enough that scheduling stays cheap for a million files.
MAX_INPUT_BLOCKS = 10_000
_WHOLE_IMAGES = TileSettings()
_STATUSES: dict[str, Status] = {"enhanced": "enhanced", "skipped": "skipped", "failed": "failed"}


@dataclass
class RayBatchReport(BatchReport):
    """A `BatchReport` plus what only a distributed run knows."""

    nodes: list[NodeFigures] = field(default_factory=list)
    plan: ActorPlan | None = None
    read_bytes: int = 0  # images and weights read by the actors
    write_bytes: int = 0  # outputs written by the actors
    actor_cpu_s: float = 0.0
    # What the actors run, for the summary's settings (the driver loads the model once to
    # check it before any actor starts).
    model: str = ""
    network: str = ""
    native_scale: int = 0
    denoise: float | None = None
    device: str = ""  # cpu or cuda (in each actor, the GPU Ray gave it)
    precision: str = ""


@dataclass(frozen=True)
class _WorkerSettings:
    model: str
    denoise: float | None
    precision: str
    tiles: TileSettings
    compile_mode: str | None
    job: EnhanceJob
    plan: ActorPlan
    crash: CrashOnce | None


class EnhanceWorker:
    """One Ray actor: a model loaded once, then `run_batch` on each batch of paths."""

    def __init__(self, settings: _WorkerSettings) -> None:
        set_torch_threads(settings.plan.torch_threads)
        device = resolve_device(settings.plan.device)
        loaded = load_enhancement_model(settings.model, settings.denoise)
        self._upscaler = Upscaler(
            loaded.network,
            loaded.spec,
            device=device,
            dtype=resolve_dtype(settings.precision, device),
            tiles=settings.tiles,
            compile_mode=settings.compile_mode,
        )
        # One file in flight per stage: the actor pool, not threads, gives the parallelism.
        self._job = dataclasses.replace(settings.job, io_workers=1)
        self._crash = settings.crash
        self._identity = worker_identity()
        self._unreported_read = loaded.weights_bytes  # counted with this actor's first batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["path"]]
        if self._crash is not None:
            for path in paths:
                self._crash.maybe_crash(path)
        io = IOCounter(read_bytes=self._unreported_read)
        self._unreported_read = 0
        cpu0 = time.process_time()
        results = run_batch([Path(p) for p in paths], self._upscaler, self._job, io=io)
        cpu_s = time.process_time() - cpu0
        return _result_columns(batch["index"], results, io, cpu_s, self._identity)


def _result_columns(
    indices: np.ndarray,
    report: BatchReport,
    io: IOCounter,
    cpu_s: float,
    worker: WorkerIdentity,
) -> dict[str, np.ndarray]:
    """FileResult fields as columns; None as "" or -1. Batch-wide figures (bytes, CPU time)
    ride on the first row, so sums over rows are the batch's totals."""
    results = report.results
    n = len(results)
    first = np.zeros(n, dtype=bool)
    first[:1] = True
    columns: dict[str, np.ndarray] = {
        "index": np.asarray(indices, dtype=np.int64),
        "source": np.asarray([str(r.source) for r in results], dtype=str),
        "status": np.asarray([r.status for r in results], dtype=str),
        "output": np.asarray([str(r.output) if r.output else "" for r in results], dtype=str),
        "error": np.asarray([r.error or "" for r in results], dtype=str),
        "input_megapixels": np.asarray([r.input_megapixels for r in results], dtype=np.float64),
        "output_width": np.asarray(
            [r.output_size[0] if r.output_size else -1 for r in results], dtype=np.int64
        ),
        "output_height": np.asarray(
            [r.output_size[1] if r.output_size else -1 for r in results], dtype=np.int64
        ),
        "seconds": np.asarray([r.seconds for r in results], dtype=np.float64),
        "has_stages": np.asarray([bool(r.stage_seconds) for r in results], dtype=bool),
        "read_bytes": np.where(first, io.read_bytes, 0).astype(np.int64),
        "write_bytes": np.where(first, io.write_bytes, 0).astype(np.int64),
        "cpu_s": np.where(first, cpu_s, 0.0).astype(np.float64),
        "node_id": np.asarray([worker.node_id] * n, dtype=str),
        "hostname": np.asarray([worker.hostname] * n, dtype=str),
        "pid": np.full(n, worker.pid, dtype=np.int64),
    }
    for stage in STAGES:
        columns[f"{stage}_s"] = np.asarray(
            [r.stage_seconds.get(stage, 0.0) for r in results], dtype=np.float64
        )
    return columns


@dataclass(frozen=True)
class _Row:
    """One file's result row back on the driver."""

    index: int
    result: FileResult
    worker: WorkerIdentity
    read_bytes: int
    write_bytes: int
    cpu_s: float


def _rows(batch: dict[str, np.ndarray]) -> Iterator[_Row]:
    for i in range(len(batch["index"])):
        width, height = int(batch["output_width"][i]), int(batch["output_height"][i])
        output, error = str(batch["output"][i]), str(batch["error"][i])
        result = FileResult(
            source=Path(str(batch["source"][i])),
            status=_STATUSES[str(batch["status"][i])],
            output=Path(output) if output else None,
            error=error or None,
            input_megapixels=float(batch["input_megapixels"][i]),
            output_size=(width, height) if width >= 0 else None,
            seconds=float(batch["seconds"][i]),
            stage_seconds=(
                {stage: float(batch[f"{stage}_s"][i]) for stage in STAGES}
                if batch["has_stages"][i]
                else {}
            ),
        )
        worker = WorkerIdentity(
            str(batch["node_id"][i]), str(batch["hostname"][i]), int(batch["pid"][i])
        )
        yield _Row(
            int(batch["index"][i]),
            result,
            worker,
            int(batch["read_bytes"][i]),
            int(batch["write_bytes"][i]),
            float(batch["cpu_s"][i]),
        )


def run_enhance_on_ray(
    files: Sequence[Path],
    *,
    model: str,
    denoise: float | None,
    device_spec: str = "auto",
    precision: str = "auto",
    tiles: TileSettings = _WHOLE_IMAGES,
    compile_mode: str | None = None,
    job: EnhanceJob,
    address: str | None = None,
    actors: int | None = None,
    batch_files: int = DEFAULT_BATCH_FILES,
    num_cpus: int | None = None,
    io: IOCounter | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    crash: CrashOnce | None = None,
) -> RayBatchReport:
    """Enhance `files` on Ray as `run_batch` does locally; results in input order.

    `address` None starts a local Ray with `num_cpus` (default all cores). `actors` defaults
    to one per GPU, or one per CPU core on a cluster without GPUs. `on_result` is called on
    the driver as each file's result arrives (any order). The actors' bytes read and written
    are added to `io`. `crash` is fault injection for tests and drills.
    """
    # Fail fast, before any cluster starts: a bad --model or --denoise is the user's to fix.
    loaded = load_enhancement_model(model, denoise)
    report = RayBatchReport(
        model=loaded.name,
        network=loaded.spec.arch,
        native_scale=loaded.spec.scale,
        denoise=loaded.denoise,
    )
    if not files:
        return report
    if batch_files < 1:
        raise ValueError(f"batch_files must be >= 1, got {batch_files}")
    with ray_session(address, num_cpus=num_cpus) as resources:
        plan = plan_actors(resources, device_spec=device_spec, actors=actors)
        report.plan = plan
        report.device = plan.device
        dtype = resolve_dtype(precision, torch.device(plan.device))
        report.precision = str(dtype).removeprefix("torch.")
        log.info("enhancing %d files on Ray: %s", len(files), plan)
        ray = import_ray()
        settings = _WorkerSettings(model, denoise, precision, tiles, compile_mode, job, plan, crash)
        items = [{"index": i, "path": str(path)} for i, path in enumerate(files)]
        blocks = min(MAX_INPUT_BLOCKS, -(-len(items) // batch_files))
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            EnhanceWorker,
            batch_size=batch_files,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=plan.actors, max_tasks_in_flight_per_actor=2),
            fn_constructor_kwargs={"settings": settings},
            **plan.remote_args(),
        )
        by_index = _collect(dataset, ray, report, on_result)
    _finish(report, files, by_index, on_result)
    if io is not None:
        io.add_read(report.read_bytes)
        io.add_write(report.write_bytes)
    return report


def _collect(
    dataset: Any,
    ray: Any,
    report: RayBatchReport,
    on_result: Callable[[FileResult], None] | None,
) -> dict[int, FileResult]:
    by_index: dict[int, FileResult] = {}
    tally = NodeTally()
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for row in _rows(batch):
                if row.index in by_index:  # a retried batch must never count a file twice
                    log.warning("dropping a second result for %s", row.result.source)
                    continue
                by_index[row.index] = row.result
                report.read_bytes += row.read_bytes
                report.write_bytes += row.write_bytes
                report.actor_cpu_s += row.cpu_s
                tally.add(
                    row.worker,
                    done=row.result.status == "enhanced",
                    megapixels=row.result.input_megapixels,
                    seconds=row.result.seconds,
                    cpu_s=row.cpu_s,
                )
                if on_result is not None:
                    on_result(row.result)
    except (ray.exceptions.RayError, ray.data.exceptions.SystemException) as exc:
        raise run_failed(exc) from exc
    report.nodes = tally.figures()
    return by_index


def _finish(
    report: RayBatchReport,
    files: Sequence[Path],
    by_index: dict[int, FileResult],
    on_result: Callable[[FileResult], None] | None,
) -> None:
    """The report in input order, like the local run's; a file with no result is failed."""
    for i, source in enumerate(files):
        result = by_index.get(i)
        if result is None:
            result = FileResult(
                Path(source), "failed", error="no result came back from the Ray cluster; rerun"
            )
            if on_result is not None:
                on_result(result)
        report.add(result)
