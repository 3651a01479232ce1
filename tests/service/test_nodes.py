"""Workflow nodes on a real photo: per-task detection options, storage, and missing index."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.errors import OptionError
from engine.faces.factory import DetectorConfig, RecognizerConfig
from engine.resources import IOCounter
from engine.service import nodes
from engine.service.models_cache import ModelCache
from engine.service.nodes import TaskContext, WorkerConfig
from engine.service.queue.types import TaskRecord, TaskStatus


@pytest.fixture(scope="module")
def models(faces_dir: Path) -> ModelCache:
    scrfd = faces_dir.parent / "models" / "unofficial" / "scrfd_2.5g_kps.hpc203-reexport.onnx"
    return ModelCache(
        device="cpu",
        detector=DetectorConfig(kind="scrfd", model=str(scrfd)),
        recognizer=RecognizerConfig(kind="dlib"),
    )


def _context(photo: Path, parameters: dict, models: ModelCache, tmp_path: Path) -> TaskContext:
    task = TaskRecord(
        task_id="pt-0123456789ab",
        file_path=str(photo),
        workflow="test",
        parameters=parameters,
        priority=5,
        status=TaskStatus.PROCESSING,
        queued_at=datetime.now(timezone.utc),
        max_retries=0,
    )
    config = WorkerConfig(buckets={"out": tmp_path / "out"}, index_dir=tmp_path / "no-index")
    return TaskContext(task, config, models, IOCounter())


def test_detection_options_of_the_task_are_honoured(models: ModelCache, tmp_path: Path) -> None:
    import insightface

    t1 = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    found = {}
    for label, options in {
        "default": {},
        "strict": {"det_thresh": 0.9},
        "tiled": {"tiles": True},
    }.items():
        ctx = _context(t1, {"face_detect": options}, models, tmp_path)
        nodes.decode(ctx)
        nodes.face_detect(ctx)
        found[label] = ctx.faces
    assert len(found["default"]) == 6
    assert 0 < len(found["strict"]) < 6 and all(f.score >= 0.9 for f in found["strict"])
    assert len(found["tiled"]) >= 6


def test_store_writes_under_the_bucket_and_similarity_needs_an_index(
    models: ModelCache, tmp_path: Path, faces_dir: Path
) -> None:
    photo = faces_dir / "kit_harington" / "john2.jpg"
    ctx = _context(
        photo, {"storage": {"bucket": "out", "path_template": "a/{stem}.{ext}"}}, models, tmp_path
    )
    for node in (nodes.decode, nodes.face_detect, nodes.face_embed, nodes.similarity, nodes.store):
        node(ctx)
    assert ctx.output_path == tmp_path / "out" / "a" / "john2.jpg"
    assert ctx.io.write_bytes == ctx.output_path.stat().st_size
    assert ctx.similar == []  # no index: nothing made up
    metadata = ctx.output_metadata()
    assert (metadata["width"], metadata["height"]) == (630, 374)
    assert len(metadata["face_data"]) == 1

    ctx = _context(photo, {"storage": {"bucket": "elsewhere"}}, models, tmp_path)
    nodes.decode(ctx)
    with pytest.raises(OptionError, match="unknown storage bucket"):
        nodes.store(ctx)
