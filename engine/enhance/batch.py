"""Enhance many files as a pipeline: decode ahead in threads, enhance on the device, encode and
write behind in threads. One bad file never stops the batch.

    decode pool ──(bounded look-ahead)──▶ device ──(bounded in-flight)──▶ encode+write pool

The device stage runs in the calling thread, so one model serves every image in turn while
the pools keep it fed; both queues are bounded, so memory stays flat over any number of
files. Results come back in input order. Outputs are written atomically and never over an
original; an output that already exists is skipped unless `overwrite`, so an interrupted
run resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from engine.enhance.photo import AlphaMode, enhance_pixels
from engine.enhance.upscaler import Upscaler
from engine.errors import AmpError, UnsafePathError
from engine.io.atomic import write_atomic
from engine.io.decode import DEFAULT_MAX_PIXELS, DecodedImage, probe_image, read_image
from engine.io.encode import FILE_EXTENSIONS, encode_image
from engine.io.paths import file_mtime, render_output_path
from engine.resources import IOCounter

log = logging.getLogger(__name__)
T = TypeVar("T")

Status = Literal["enhanced", "skipped", "failed"]
STAGES = ("decode", "enhance", "encode", "write")
_SUFFIX_FORMATS = {"jpg": "jpeg", "jpeg": "jpeg", "tif": "tiff", "tiff": "tiff"}


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
    io_workers: int = 2  # threads for decoding, and as many for encoding and writing


@dataclass(frozen=True)
class FileResult:
    source: Path
    status: Status
    output: Path | None = None
    error: str | None = None
    input_megapixels: float = 0.0
    output_size: tuple[int, int] | None = None  # (width, height)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

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

    def add(self, result: FileResult) -> None:
        self.results.append(result)
        for stage, seconds in result.stage_seconds.items():
            self.stage_seconds[stage] += seconds

    def count(self, status: Status) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def enhanced_megapixels(self) -> float:
        return sum(r.input_megapixels for r in self.results if r.status == "enhanced")


def output_extension(source: Path, fmt: str) -> str:
    """The input's own suffix spelling (.jpeg, .TIF) when the format is kept, else the usual one."""
    ext = source.suffix.lstrip(".")
    kept = _SUFFIX_FORMATS.get(ext.lower(), ext.lower()) == fmt
    return ext if kept else FILE_EXTENSIONS[fmt]


@dataclass
class _Decoded:
    """A file that passed the decode stage and waits for the device."""

    source: Path
    target: Path
    format: str
    image: DecodedImage
    started: float
    decode_s: float


@dataclass
class _Enhanced:
    decoded: _Decoded
    pixels: np.ndarray
    enhance_s: float


def run_batch(
    files: Iterable[Path],
    upscaler: Upscaler,
    job: EnhanceJob,
    *,
    io: IOCounter | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> BatchReport:
    report = BatchReport()
    counter = io or IOCounter()
    look_ahead = 2 * job.io_workers
    with (
        ThreadPoolExecutor(job.io_workers, thread_name_prefix="amp-decode") as decoders,
        ThreadPoolExecutor(job.io_workers, thread_name_prefix="amp-encode") as encoders,
    ):
        writing: deque[Future[FileResult]] = deque()

        def emit(result: FileResult) -> None:
            report.add(result)
            if on_result is not None:
                on_result(result)

        for decoded in _decode_ahead(files, decoders, job, counter, look_ahead):
            # Earlier files finish before later ones are reported: results stay in input order.
            while writing and (writing[0].done() or len(writing) >= look_ahead):
                emit(writing.popleft().result())
            if isinstance(decoded, FileResult):
                if writing:
                    writing.append(_completed(decoded))
                else:
                    emit(decoded)
                continue
            enhanced = _guard(
                decoded.source, decoded.started, partial(_enhance, decoded, upscaler, job)
            )
            if isinstance(enhanced, FileResult):
                writing.append(_completed(enhanced))
                continue
            write = partial(_encode_and_write, enhanced, job, counter)
            writing.append(encoders.submit(_guard, decoded.source, decoded.started, write))
        while writing:
            emit(writing.popleft().result())
    return report


def _decode_ahead(
    files: Iterable[Path], pool: ThreadPoolExecutor, job: EnhanceJob, io: IOCounter, depth: int
) -> Iterator[_Decoded | FileResult]:
    """Decoded files in input order, with at most `depth` decodes running or waiting."""
    pending: deque[Future[_Decoded | FileResult]] = deque()
    for source in files:
        path, started = Path(source), time.perf_counter()
        pending.append(pool.submit(_guard, path, started, partial(_decode, path, job, io, started)))
        if len(pending) >= depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _decode(source: Path, job: EnhanceJob, io: IOCounter, started: float) -> _Decoded | FileResult:
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
        return FileResult(source, "skipped", target, seconds=time.perf_counter() - started)
    t0 = time.perf_counter()
    image = read_image(source, max_pixels=job.max_pixels)
    io.add_read(image.source_bytes)
    return _Decoded(source, target, fmt, image, started, time.perf_counter() - t0)


def _enhance(decoded: _Decoded, upscaler: Upscaler, job: EnhanceJob) -> _Enhanced:
    t0 = time.perf_counter()
    pixels = enhance_pixels(decoded.image.pixels, upscaler, outscale=job.outscale, alpha=job.alpha)
    return _Enhanced(decoded, pixels, time.perf_counter() - t0)


def _encode_and_write(enhanced: _Enhanced, job: EnhanceJob, io: IOCounter) -> FileResult:
    decoded, pixels = enhanced.decoded, enhanced.pixels
    t0 = time.perf_counter()
    data = encode_image(
        pixels,
        decoded.format,
        exif=decoded.image.exif,
        icc_profile=decoded.image.icc_profile,
        quality=job.quality,
    )
    t1 = time.perf_counter()
    write_atomic(decoded.target, data)
    io.add_write(len(data))
    t2 = time.perf_counter()
    image = decoded.image
    return FileResult(
        decoded.source,
        "enhanced",
        decoded.target,
        input_megapixels=image.width * image.height / 1e6,
        output_size=(pixels.shape[1], pixels.shape[0]),
        seconds=t2 - decoded.started,
        stage_seconds={
            "decode": decoded.decode_s,
            "enhance": enhanced.enhance_s,
            "encode": t1 - t0,
            "write": t2 - t1,
        },
    )


def _guard(source: Path, started: float, stage: Callable[[], T]) -> T | FileResult:
    """Run one stage for one file; its failure becomes that file's result, never the batch's."""
    try:
        return stage()
    except AmpError as exc:
        return FileResult(source, "failed", error=str(exc), seconds=time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - a bug on one photo must not lose a night's batch
        log.exception("internal error while enhancing %s", source)
        return FileResult(
            source,
            "failed",
            error=f"internal error: {exc!r}",
            seconds=time.perf_counter() - started,
        )


def _completed(result: FileResult) -> Future[FileResult]:
    future: Future[FileResult] = Future()
    future.set_result(result)
    return future
