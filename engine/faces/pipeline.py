"""Faces of one photo file, in its upright original's pixels: decode, detect, embed.

Without tiling, detection runs on a reduced JPEG decode (see reduced_decode) and the full
image is decoded only when there are faces to embed: embeddings need the face at its real
resolution. With tiling, the full image is decoded once and serves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.faces.boxes import clip_face, map_faces
from engine.faces.pixels import as_rgb8
from engine.faces.reduced_decode import read_reduced
from engine.faces.tiling import TileOptions, detect_tiled
from engine.faces.types import DetectedFace, FaceDetector, FaceRecognizer
from engine.io.decode import DEFAULT_MAX_PIXELS, read_image


class SizedDetector(FaceDetector, Protocol):
    input_px: int  # the longer side the detector shrinks an image to


@dataclass(frozen=True, eq=False)
class FileFaces:
    width: int  # of the upright original
    height: int
    faces: list[DetectedFace]
    embeddings: np.ndarray | None  # (len(faces), dim) when a recognizer was given
    recognizer: str | None


def detect_file(
    path: Path,
    detector: SizedDetector,
    *,
    tiles: TileOptions | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> FileFaces:
    """Faces in `path` without embeddings."""
    return analyze_file(path, detector, None, tiles=tiles, max_pixels=max_pixels)


def analyze_file(
    path: Path,
    detector: SizedDetector,
    recognizer: FaceRecognizer | None,
    *,
    tiles: TileOptions | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> FileFaces:
    """Faces in `path` (EXIF orientation applied), embedded when `recognizer` is given."""
    if tiles is not None:
        full = as_rgb8(read_image(path, max_pixels=max_pixels).pixels)
        height, width = full.shape[:2]
        faces = detect_tiled(detector, full, tiles)
    else:
        reduced = read_reduced(path, detector.input_px, max_pixels=max_pixels)
        width, height = reduced.full_width, reduced.full_height
        found = map_faces(detector.detect(reduced.pixels), scale_xy=(reduced.scale,) * 2)
        faces = [clip_face(f, width, height) for f in found]
        full = reduced.pixels if reduced.scale == 1.0 else None
    if recognizer is None:
        return FileFaces(width, height, faces, None, None)
    if not faces:
        return FileFaces(
            width, height, faces, np.zeros((0, recognizer.dim), np.float32), recognizer.name
        )
    if full is None:
        full = as_rgb8(read_image(path, max_pixels=max_pixels).pixels)
    return FileFaces(width, height, faces, recognizer.embed(full, faces), recognizer.name)
