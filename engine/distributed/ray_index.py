"""`amp faces index --ray`: detect and embed on a Ray Data actor pool, index on the driver.

    driver: stat + needs_indexing (single writer) ─▶ paths to do ─▶ map_batches(IndexWorker)
            ─▶ rows (faces, embeddings) ─▶ driver: FaceIndex.add_asset, one commit per image

The actors never touch the index: each loads the detector and recognizer once and returns,
per file, what `engine.index.indexer` would have recorded (size, mtime, sha1, size in pixels,
EXIF time, faces, float32 embeddings). The driver alone writes, as the local indexer does, so
the index stays single-writer and every image is one transaction; a killed run resumes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

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
    worker_identity,
)
from engine.errors import AmpError, ImageReadError
from engine.faces.factory import DetectorConfig, RecognizerConfig, build_detector, build_recognizer
from engine.faces.pipeline import SizedDetector, analyze_file
from engine.faces.tiling import TileOptions
from engine.faces.types import DetectedFace
from engine.index.indexer import IndexedFile, IndexReport, sha1_file
from engine.index.store import FaceIndex
from engine.index.types import AssetRecord
from engine.io.decode import DEFAULT_MAX_PIXELS, probe_image

log = logging.getLogger(__name__)

DEFAULT_BATCH_FILES = 2
MAX_INPUT_BLOCKS = 10_000


@dataclass
class RayIndexReport(IndexReport):
    """An `IndexReport` plus the per-node figures of a distributed run."""

    nodes: list[NodeFigures] = field(default_factory=list)
    plan: ActorPlan | None = None
    detector: str = ""
    recognizer: str = ""


@dataclass(frozen=True)
class _IndexSettings:
    detector: DetectorConfig
    recognizer: RecognizerConfig
    tiles: TileOptions | None
    max_pixels: int
    crash: CrashOnce | None


def _model_names(detector: DetectorConfig, recognizer: RecognizerConfig) -> tuple[str, str]:
    """The names the index records (they depend on the weights, not on the providers): built
    on the driver, on the CPU, before any actor starts, so a missing model fails fast."""
    detector = dataclasses.replace(detector, providers=None)
    recognizer = dataclasses.replace(recognizer, providers=None)
    return build_detector(detector).name, build_recognizer(recognizer).name


@dataclass(frozen=True)
class FileAnalysis:
    """What an actor found in one file: everything `FaceIndex.add_asset` needs, or an error."""

    path: str
    error: str | None
    size: int = 0
    mtime_ns: int = 0
    sha1: str = ""
    width: int = 0
    height: int = 0
    taken_at: datetime | None = None
    faces: list[DetectedFace] = field(default_factory=list)
    embeddings: np.ndarray | None = None
    seconds: float = 0.0
    cpu_s: float = 0.0  # the actor process's CPU time on this file, threads included


class IndexWorker:
    """One Ray actor: detector and recognizer loaded once, then each file analysed."""

    def __init__(self, settings: _IndexSettings) -> None:
        detector = build_detector(settings.detector)
        self._detector: SizedDetector = detector  # type: ignore[assignment]
        self._recognizer = build_recognizer(settings.recognizer)
        self._settings = settings
        self._identity = worker_identity()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        analyses = []
        for path in (str(p) for p in batch["path"]):
            if self._settings.crash is not None:
                self._settings.crash.maybe_crash(path)
            cpu0 = time.process_time()
            analysis = self._analyze(Path(path))
            analyses.append(dataclasses.replace(analysis, cpu_s=time.process_time() - cpu0))
        return _analysis_columns(batch["index"], analyses, self._identity)

    def _analyze(self, path: Path) -> FileAnalysis:
        start = time.perf_counter()
        try:
            try:
                stat = path.stat()
            except OSError as exc:
                raise ImageReadError(path, exc.strerror or str(exc)) from exc
            found = analyze_file(
                path,
                self._detector,
                self._recognizer,
                tiles=self._settings.tiles,
                max_pixels=self._settings.max_pixels,
            )
            if found.embeddings is None:  # analyze_file embeds whenever it has a recognizer
                raise RuntimeError(f"{path}: {self._recognizer.name} returned no embeddings")
            return FileAnalysis(
                str(path),
                None,
                stat.st_size,
                stat.st_mtime_ns,
                sha1_file(path),
                found.width,
                found.height,
                probe_image(path).taken_at,
                found.faces,
                np.asarray(found.embeddings, dtype=np.float32),
                time.perf_counter() - start,
            )
        except AmpError as exc:
            return FileAnalysis(str(path), str(exc), seconds=time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - one photo's bug must not stop the run
            log.exception("internal error while indexing %s", path)
            return FileAnalysis(
                str(path), f"internal error: {exc!r}", seconds=time.perf_counter() - start
            )


def _faces_json(faces: Sequence[DetectedFace]) -> str:
    """Faces as plain lists; float32 landmarks widen to float64 exactly, so nothing is lost."""
    return json.dumps(
        [
            {
                "box_xyxy": [float(v) for v in face.box_xyxy],
                "landmarks_xy": np.asarray(face.landmarks_xy, np.float32).tolist(),
                "score": float(face.score),
                "detector": face.detector,
            }
            for face in faces
        ]
    )


def _faces_from_json(text: str) -> list[DetectedFace]:
    return [
        DetectedFace(
            box_xyxy=tuple(face["box_xyxy"]),
            landmarks_xy=np.asarray(face["landmarks_xy"], dtype=np.float32),
            score=face["score"],
            detector=face["detector"],
        )
        for face in json.loads(text)
    ]


def _analysis_columns(
    indices: np.ndarray, analyses: list[FileAnalysis], worker: WorkerIdentity
) -> dict[str, np.ndarray]:
    n = len(analyses)
    embeddings = [a.embeddings if a.embeddings is not None else None for a in analyses]
    return {
        "index": np.asarray(indices, dtype=np.int64),
        "path": np.asarray([a.path for a in analyses], dtype=str),
        "error": np.asarray([a.error or "" for a in analyses], dtype=str),
        "failed": np.asarray([a.error is not None for a in analyses], dtype=bool),
        "size": np.asarray([a.size for a in analyses], dtype=np.int64),
        "mtime_ns": np.asarray([a.mtime_ns for a in analyses], dtype=np.int64),
        "sha1": np.asarray([a.sha1 for a in analyses], dtype=str),
        "width": np.asarray([a.width for a in analyses], dtype=np.int64),
        "height": np.asarray([a.height for a in analyses], dtype=np.int64),
        "taken_at": np.asarray(
            [a.taken_at.isoformat() if a.taken_at else "" for a in analyses], dtype=str
        ),
        "faces": np.asarray([_faces_json(a.faces) for a in analyses], dtype=str),
        "embedding_dim": np.asarray(
            [e.shape[1] if e is not None and e.ndim == 2 else 0 for e in embeddings],
            dtype=np.int64,
        ),
        # Raw little-endian float32 rows: exact, compact, any number of faces.
        "embeddings": np.asarray(
            [e.astype("<f4").tobytes() if e is not None else b"" for e in embeddings],
            dtype=object,
        ),
        "seconds": np.asarray([a.seconds for a in analyses], dtype=np.float64),
        "cpu_s": np.asarray([a.cpu_s for a in analyses], dtype=np.float64),
        "node_id": np.asarray([worker.node_id] * n, dtype=str),
        "hostname": np.asarray([worker.hostname] * n, dtype=str),
        "pid": np.full(n, worker.pid, dtype=np.int64),
    }


def _rows(batch: dict[str, np.ndarray]) -> Iterator[tuple[int, FileAnalysis, WorkerIdentity]]:
    for i in range(len(batch["index"])):
        worker = WorkerIdentity(
            str(batch["node_id"][i]), str(batch["hostname"][i]), int(batch["pid"][i])
        )
        path, seconds = str(batch["path"][i]), float(batch["seconds"][i])
        cpu_s = float(batch["cpu_s"][i])
        if batch["failed"][i]:
            error = str(batch["error"][i])
            yield (
                int(batch["index"][i]),
                FileAnalysis(path, error, seconds=seconds, cpu_s=cpu_s),
                worker,
            )
            continue
        faces = _faces_from_json(str(batch["faces"][i]))
        dim = int(batch["embedding_dim"][i])
        embeddings = np.frombuffer(bytes(batch["embeddings"][i]), dtype="<f4").reshape(
            len(faces), dim
        )
        taken_at = str(batch["taken_at"][i])
        analysis = FileAnalysis(
            path,
            None,
            int(batch["size"][i]),
            int(batch["mtime_ns"][i]),
            str(batch["sha1"][i]),
            int(batch["width"][i]),
            int(batch["height"][i]),
            datetime.fromisoformat(taken_at) if taken_at else None,
            faces,
            embeddings,
            seconds,
            cpu_s,
        )
        yield int(batch["index"][i]), analysis, worker


def run_index_on_ray(
    files: Sequence[Path],
    *,
    detector_config: DetectorConfig,
    recognizer_config: RecognizerConfig,
    index: FaceIndex,
    address: str | None = None,
    actors: int | None = None,
    device_spec: str = "auto",
    tiles: TileOptions | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    batch_files: int = DEFAULT_BATCH_FILES,
    num_cpus: int | None = None,
    on_result: Callable[[IndexedFile], None] | None = None,
    crash: CrashOnce | None = None,
) -> RayIndexReport:
    """Index `files` into `index` (a writer) with the faces found on Ray; input order.

    Unchanged files are settled on the driver (`needs_indexing`) before any actor starts;
    `on_result` is called for every file as its result is known. `device_spec` auto gives
    each actor a GPU where the cluster has GPUs (ONNX Runtime then picks its CUDA provider,
    or those of `providers` in the configs), cpu never asks for one; `actors` defaults to
    one per GPU, else one per core.
    """
    report = RayIndexReport()
    if not files:
        return report
    results: dict[int, IndexedFile] = {}

    def settle(i: int, result: IndexedFile) -> None:
        results[i] = result
        if on_result is not None:
            on_result(result)

    report.detector, report.recognizer = _model_names(detector_config, recognizer_config)
    todo = _changed_files(files, index, report.recognizer, settle)
    if todo:  # everything unchanged: no cluster to start
        with ray_session(address, num_cpus=num_cpus) as resources:
            ray = import_ray()
            plan = plan_actors(resources, device_spec=device_spec, actors=actors)
            report.plan = plan
            settings = _IndexSettings(detector_config, recognizer_config, tiles, max_pixels, crash)
            items = [{"index": i, "path": str(files[i])} for i in todo]
            blocks = min(MAX_INPUT_BLOCKS, -(-len(items) // batch_files))
            dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
                IndexWorker,
                batch_size=batch_files,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(
                    size=plan.actors, max_tasks_in_flight_per_actor=2
                ),
                fn_constructor_kwargs={"settings": settings},
                **plan.remote_args(),
            )
            report.nodes = _write_results(dataset, ray, files, index, report.recognizer, settle)
    for i, path in enumerate(files):
        result = results.get(i)
        if result is None:
            result = IndexedFile(
                path, "failed", error="no result came back from the Ray cluster; rerun"
            )
            if on_result is not None:
                on_result(result)
        report.results.append(result)
    return report


def _changed_files(
    files: Sequence[Path],
    index: FaceIndex,
    recognizer: str,
    settle: Callable[[int, IndexedFile], None],
) -> list[int]:
    """Indices of the files to analyse; the others are settled as unchanged or failed."""
    todo = []
    for i, path in enumerate(files):
        start = time.perf_counter()
        try:
            stat = path.stat()
        except OSError as exc:
            error = str(ImageReadError(path, exc.strerror or str(exc)))
            settle(i, IndexedFile(path, "failed", error=error, seconds=time.perf_counter() - start))
            continue
        if index.needs_indexing(
            path.resolve(), stat.st_size, stat.st_mtime_ns, lambda p=path: sha1_file(p), recognizer
        ):
            todo.append(i)
        else:
            settle(i, IndexedFile(path, "unchanged", seconds=time.perf_counter() - start))
    return todo


def _write_results(
    dataset: Any,
    ray: Any,
    files: Sequence[Path],
    index: FaceIndex,
    recognizer: str,
    settle: Callable[[int, IndexedFile], None],
) -> list[NodeFigures]:
    tally = NodeTally()
    seen: set[int] = set()
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for i, analysis, worker in _rows(batch):
                if i in seen:  # a retried batch must never record an image twice
                    continue
                seen.add(i)
                result = _record(files[i], analysis, index, recognizer)
                tally.add(
                    worker,
                    done=result.status == "indexed",
                    megapixels=analysis.width * analysis.height / 1e6,
                    seconds=analysis.seconds,
                    cpu_s=analysis.cpu_s,
                )
                settle(i, result)
    except (ray.exceptions.RayError, ray.data.exceptions.SystemException) as exc:
        raise run_failed(exc) from exc
    return tally.figures()


def _record(path: Path, analysis: FileAnalysis, index: FaceIndex, recognizer: str) -> IndexedFile:
    """One image into the index, in one transaction, as the local indexer records it."""
    start = time.perf_counter()
    if analysis.error is not None:
        return IndexedFile(path, "failed", error=analysis.error, seconds=analysis.seconds)
    asset = AssetRecord(
        path=str(Path(analysis.path).resolve()),
        size=analysis.size,
        mtime_ns=analysis.mtime_ns,
        sha1=analysis.sha1,
        width=analysis.width,
        height=analysis.height,
        taken_at=analysis.taken_at,
    )
    embeddings = analysis.embeddings
    if embeddings is None:
        embeddings = np.zeros((0, 0), np.float32)
    try:
        index.add_asset(asset, analysis.faces, embeddings, recognizer)
    except AmpError as exc:
        return IndexedFile(path, "failed", error=str(exc), seconds=analysis.seconds)
    seconds = analysis.seconds + time.perf_counter() - start
    return IndexedFile(path, "indexed", len(analysis.faces), seconds=seconds)
