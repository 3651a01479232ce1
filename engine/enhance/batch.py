"""Enhance many files: decode, enhance, encode, write; one bad file never stops the batch.

Outputs are written atomically and never over an original; an output that already exists is
skipped unless `overwrite`, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine.enhance.photo import AlphaMode, enhance_pixels
from engine.enhance.upscaler import Upscaler
from engine.errors import AmpError, UnsafePathError
from engine.io.atomic import write_atomic
from engine.io.decode import DEFAULT_MAX_PIXELS, probe_image, read_image
from engine.io.encode import encode_image
from engine.io.paths import file_mtime, render_output_path
from engine.resources import IOCounter

log = logging.getLogger(__name__)

Status = Literal["enhanced", "skipped", "failed"]
STAGES = ("decode", "enhance", "encode", "write")

# Output extension per format; an input keeps its own spelling (.jpeg, .TIF) when unchanged.
_EXTENSIONS = {"jpeg": "jpg", "png": "png", "tiff": "tif", "webp": "webp", "bmp": "bmp"}


@dataclass(frozen=True)
class EnhanceJob:
    out_root: Path
    path_template: str = "{filename}"
    outscale: float | None = None
    alpha: AlphaMode = "network"
    output_format: str | None = None  # None keeps each input's format
    quality: int = 95
    overwrite: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class FileResult:
    source: Path
    status: Status
    output: Path | None = None
    error: str | None = None
    input_megapixels: float = 0.0
    output_size: tuple[int, int] | None = None  # (width, height)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "status": self.status,
            "output": str(self.output) if self.output else None,
            "error": self.error,
            "input_megapixels": round(self.input_megapixels, 4),
            "output_size": list(self.output_size) if self.output_size else None,
            "seconds": round(self.seconds, 4),
        }


@dataclass
class BatchReport:
    results: list[FileResult] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def count(self, status: Status) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def enhanced_megapixels(self) -> float:
        return sum(r.input_megapixels for r in self.results if r.status == "enhanced")


def output_extension(source: Path, fmt: str) -> str:
    ext = source.suffix.lstrip(".")
    return ext if _format_of_suffix(ext) == fmt else _EXTENSIONS[fmt]


def _format_of_suffix(ext: str) -> str | None:
    ext = ext.lower()
    aliases = {"jpg": "jpeg", "jpeg": "jpeg", "tif": "tiff", "tiff": "tiff"}
    return aliases.get(ext, ext if ext in _EXTENSIONS else None)


def run_batch(
    files: Iterable[Path],
    upscaler: Upscaler,
    job: EnhanceJob,
    *,
    io: IOCounter | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> BatchReport:
    report = BatchReport()
    io = io or IOCounter()
    for source in files:
        result = _enhance_file(Path(source), upscaler, job, report.stage_seconds, io)
        report.results.append(result)
        if on_result is not None:
            on_result(result)
    return report


def _enhance_file(
    source: Path, upscaler: Upscaler, job: EnhanceJob, stages: dict[str, float], io: IOCounter
) -> FileResult:
    start = time.perf_counter()
    try:
        # The header alone decides the target, so a resumed run skips done files undecoded.
        info = probe_image(source)
        fmt = job.output_format or info.format
        target = render_output_path(
            job.out_root,
            job.path_template,
            source=source,
            taken_at=info.taken_at or file_mtime(source),
            ext=output_extension(source, fmt),
        )
        if target.exists() and target.resolve() == source.resolve():
            raise UnsafePathError(
                target, job.out_root, "it is the original, which AMP never overwrites"
            )
        if target.exists() and not job.overwrite:
            return FileResult(source, "skipped", target, seconds=time.perf_counter() - start)

        image = read_image(source, max_pixels=job.max_pixels)
        io.add_read(image.source_bytes)
        megapixels = image.width * image.height / 1e6
        t_decoded = time.perf_counter()
        stages["decode"] += t_decoded - start

        pixels = enhance_pixels(image.pixels, upscaler, outscale=job.outscale, alpha=job.alpha)
        t_enhanced = time.perf_counter()
        stages["enhance"] += t_enhanced - t_decoded

        data = encode_image(
            pixels, fmt, exif=image.exif, icc_profile=image.icc_profile, quality=job.quality
        )
        t_encoded = time.perf_counter()
        stages["encode"] += t_encoded - t_enhanced

        write_atomic(target, data)
        io.add_write(len(data))
        end = time.perf_counter()
        stages["write"] += end - t_encoded
        return FileResult(
            source,
            "enhanced",
            target,
            input_megapixels=megapixels,
            output_size=(pixels.shape[1], pixels.shape[0]),
            seconds=end - start,
        )
    except AmpError as exc:
        return FileResult(source, "failed", error=str(exc), seconds=time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - a bug on one photo must not lose a night's batch
        log.exception("internal error while enhancing %s", source)
        return FileResult(
            source, "failed", error=f"internal error: {exc!r}", seconds=time.perf_counter() - start
        )
