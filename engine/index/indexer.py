"""Fill the index from image files: skip what is unchanged, analyse the rest, one commit each.

Each image is committed on its own, so a killed run loses at most the image in hand, and a
rerun skips every image already committed (size and mtime, then sha1).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine.errors import AmpError, ImageReadError
from engine.faces.pipeline import SizedDetector, analyze_file
from engine.faces.tiling import TileOptions
from engine.faces.types import FaceRecognizer
from engine.index.store import FaceIndex
from engine.index.types import AssetRecord
from engine.io.decode import DEFAULT_MAX_PIXELS, probe_image

log = logging.getLogger(__name__)

IndexStatus = Literal["indexed", "unchanged", "failed"]


@dataclass(frozen=True)
class IndexedFile:
    path: Path
    status: IndexStatus
    faces: int = 0
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "status": self.status,
            "faces": self.faces,
            "error": self.error,
            "seconds": round(self.seconds, 4),
        }


@dataclass
class IndexReport:
    results: list[IndexedFile] = field(default_factory=list)

    def count(self, status: IndexStatus) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def faces(self) -> int:
        return sum(r.faces for r in self.results)


def sha1_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha1()  # noqa: S324 - a content fingerprint (Immich's checksum), not security
    with path.open("rb") as file:
        while chunk := file.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def index_files(
    files: Iterable[Path],
    index: FaceIndex,
    detector: SizedDetector,
    recognizer: FaceRecognizer,
    *,
    tiles: TileOptions | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_result: Callable[[IndexedFile], None] | None = None,
) -> IndexReport:
    report = IndexReport()
    for path in files:
        result = _index_one(Path(path), index, detector, recognizer, tiles, max_pixels)
        report.results.append(result)
        if on_result is not None:
            on_result(result)
    return report


def _index_one(
    path: Path,
    index: FaceIndex,
    detector: SizedDetector,
    recognizer: FaceRecognizer,
    tiles: TileOptions | None,
    max_pixels: int,
) -> IndexedFile:
    start = time.perf_counter()
    try:
        try:
            stat = path.stat()
        except OSError as exc:
            raise ImageReadError(path, exc.strerror or str(exc)) from exc
        sha1: list[str] = []

        def fingerprint() -> str:
            sha1.append(sha1_file(path))
            return sha1[0]

        absolute = path.resolve()
        if not index.needs_indexing(
            absolute, stat.st_size, stat.st_mtime_ns, fingerprint, recognizer.name
        ):
            return IndexedFile(path, "unchanged", seconds=time.perf_counter() - start)
        found = analyze_file(path, detector, recognizer, tiles=tiles, max_pixels=max_pixels)
        asset = AssetRecord(
            path=str(absolute),
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            sha1=sha1[0] if sha1 else sha1_file(path),
            width=found.width,
            height=found.height,
            taken_at=probe_image(path).taken_at,
        )
        if found.embeddings is None:  # analyze_file embeds whenever it is given a recognizer
            raise RuntimeError(f"{path}: {recognizer.name} returned no embeddings")
        index.add_asset(asset, found.faces, found.embeddings, recognizer.name)
        return IndexedFile(path, "indexed", len(found.faces), seconds=time.perf_counter() - start)
    except AmpError as exc:
        return IndexedFile(path, "failed", error=str(exc), seconds=time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - one photo's bug must not stop a library's indexing
        log.exception("internal error while indexing %s", path)
        return IndexedFile(
            path, "failed", error=f"internal error: {exc!r}", seconds=time.perf_counter() - start
        )
