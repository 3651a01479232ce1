"""What each workflow node does to a task, in order, on one shared context.

    decode           read the photo (upright, EXIF/ICC kept for the output)
    ai/image-enhance Real-ESRGAN at `parameters.image_enhance` (scale_factor, denoise_strength)
    ai/face-detect   faces of the photo, in its pixels
    ai/face-embed    an embedding per face
    similarity       library photos with the most similar faces (the face index)
    store            encode and write atomically under the bucket's root and path template

Nodes read `task.parameters` and the worker's configuration; they never touch the queue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.enhance.batch import output_extension
from engine.enhance.models import DEFAULT_MODEL
from engine.enhance.photo import enhance_pixels
from engine.errors import OptionError
from engine.faces.pixels import as_rgb8
from engine.faces.tiling import TileOptions, detect_tiled
from engine.faces.types import DetectedFace
from engine.index.store import FaceIndex
from engine.io.atomic import write_atomic
from engine.io.decode import DecodedImage, read_image
from engine.io.encode import encode_image
from engine.io.paths import file_mtime, render_output_path
from engine.resources import IOCounter
from engine.service.models_cache import ModelCache
from engine.service.quality import quality_score
from engine.service.queue.types import TaskRecord
from engine.service.tags import face_tags

SIMILAR_IMAGES = 10


@dataclass(frozen=True)
class WorkerConfig:
    """What nodes need from the service's configuration."""

    buckets: Mapping[str, Path]  # storage bucket -> output root
    index_dir: Path | None = None  # the face index searched by `similarity`
    default_model: str = DEFAULT_MODEL


@dataclass
class TaskContext:
    task: TaskRecord
    config: WorkerConfig
    models: ModelCache
    io: IOCounter
    image: DecodedImage | None = None
    pixels: np.ndarray | None = None  # the photo as it will be stored (enhanced or not)
    faces: list[DetectedFace] = field(default_factory=list)
    embeddings: np.ndarray | None = None
    recognizer: str | None = None
    similar: list[dict[str, object]] = field(default_factory=list)
    output_path: Path | None = None
    output_bytes: int = 0

    def require_image(self) -> DecodedImage:
        if self.image is None:
            raise OptionError(f"workflow {self.task.workflow!r} needs a decode node first")
        return self.image

    def output_metadata(self) -> dict[str, Any]:
        image = self.require_image()
        pixels = self.pixels if self.pixels is not None else image.pixels
        height, width = pixels.shape[:2]
        return {
            "width": width,
            "height": height,
            "format": image.format,
            "size": self.output_bytes,
            "quality_score": quality_score(as_rgb8(pixels)),
            "tags": face_tags(self.faces, image.width, image.height),
            "face_data": [
                {
                    "index": i,
                    "face_id": f"face-{self.task.task_id.removeprefix('pt-')}-{i}",
                    "confidence": round(face.score, 4),
                    "bounding_box": [round(v) for v in face.box_xyxy],
                }
                for i, face in enumerate(self.faces)
            ],
            "similar_images": self.similar,
        }


def decode(ctx: TaskContext) -> None:
    ctx.image = read_image(Path(ctx.task.file_path))
    ctx.io.add_read(ctx.image.source_bytes)
    ctx.pixels = ctx.image.pixels


def image_enhance(ctx: TaskContext) -> None:
    ctx.require_image()
    options = ctx.task.parameters.get("image_enhance") or {}
    model = options.get("model") or ctx.config.default_model
    denoise = options.get("denoise_strength")
    upscaler = ctx.models.upscaler(model, denoise)
    ctx.pixels = enhance_pixels(ctx.pixels, upscaler, outscale=options.get("scale_factor"))


def face_detect(ctx: TaskContext) -> None:
    """`parameters.face_detect`: `det_thresh` (another score threshold), `tiles` (also scan
    640-px tiles of the full image for small faces)."""
    image = ctx.require_image()
    options = ctx.task.parameters.get("face_detect") or {}
    detector = ctx.models.detector(options.get("det_thresh"))
    rgb = as_rgb8(image.pixels)
    ctx.faces = (
        detect_tiled(detector, rgb, TileOptions()) if options.get("tiles") else detector.detect(rgb)
    )


def face_embed(ctx: TaskContext) -> None:
    image = ctx.require_image()
    recognizer = ctx.models.recognizer()
    ctx.recognizer = recognizer.name
    ctx.embeddings = (
        recognizer.embed(as_rgb8(image.pixels), ctx.faces)
        if ctx.faces
        else np.zeros((0, recognizer.dim), np.float32)
    )


def similarity(ctx: TaskContext) -> None:
    """Library photos whose faces best match this photo's, from the face index; none when
    there is no index, no face, or the index holds another recognizer's embeddings."""
    index_dir = ctx.config.index_dir
    if ctx.embeddings is None or not len(ctx.embeddings) or index_dir is None:
        return
    if not (index_dir / "index.sqlite").is_file():
        return
    with FaceIndex(index_dir, readonly=True) as index:
        if ctx.recognizer not in index.stats().recognizers:
            return
        options = ctx.task.parameters.get("similarity") or {}
        hits = index.similar_images(
            ctx.embeddings,
            ctx.recognizer,
            k=int(options.get("top_k") or SIMILAR_IMAGES),
            exclude_path=ctx.task.file_path,
        )
    minimum = options.get("min_similarity")
    if minimum is not None:
        hits = [h for h in hits if h.similarity >= minimum]
    ctx.similar = [
        {"image_id": f"img-{h.asset_id}", "path": h.path, "similarity": round(h.similarity, 4)}
        for h in hits
    ]


def store(ctx: TaskContext) -> None:
    image = ctx.require_image()
    storage = ctx.task.parameters.get("storage") or {}
    bucket = storage.get("bucket")
    if bucket not in ctx.config.buckets:
        raise OptionError(f"unknown storage bucket {bucket!r}")
    source = Path(ctx.task.file_path)
    target = render_output_path(
        ctx.config.buckets[bucket],
        storage.get("path_template") or "{filename}",
        source=source,
        taken_at=image.taken_at or file_mtime(source),
        ext=output_extension(source, image.format),
    )
    data = encode_image(ctx.pixels, image.format, exif=image.exif, icc_profile=image.icc_profile)
    write_atomic(target, data)
    ctx.io.add_write(len(data))
    ctx.output_path, ctx.output_bytes = target, len(data)


NODES: dict[str, Callable[[TaskContext], None]] = {
    "decode": decode,
    "ai/image-enhance": image_enhance,
    "ai/face-detect": face_detect,
    "ai/face-embed": face_embed,
    "similarity": similarity,
    "store": store,
}
