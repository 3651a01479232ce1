"""What the index stores and returns, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np

# The number format of a recognizer's embedding file, fixed when the file is created:
# float16 halves disk and memory traffic; scores are computed in float32 either way.
EmbeddingDtype = Literal["float32", "float16"]
EMBEDDING_DTYPES: tuple[str, ...] = ("float32", "float16")


@dataclass(frozen=True)
class AssetRecord:
    """One image file as the indexer saw it; `path` is absolute, `taken_at` from EXIF."""

    path: str
    size: int
    mtime_ns: int
    sha1: str
    width: int
    height: int
    taken_at: datetime | None = None


@dataclass(frozen=True)
class StoredFace:
    """A face as the index holds it: detection, recognizer, and any Immich ids attached."""

    face_id: int
    asset_id: int
    recognizer: str
    box_xyxy: tuple[float, float, float, float]
    landmarks_xy: np.ndarray = field(compare=False)  # (5, 2) float32
    score: float
    detector: str
    immich_face_id: str | None = None
    immich_person_id: str | None = None


@dataclass(frozen=True)
class FaceHit:
    """A library face found by `FaceIndex.search`; `score` is the cosine similarity."""

    face_id: int
    asset_id: int
    path: str
    box_xyxy: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class ImageHit:
    """A library image found by `FaceIndex.similar_images`.

    `similarity` is the best cosine between any of the query faces and any face of the
    image; `query_face` (a row of the query embeddings) and `face_id` name that pair.
    """

    asset_id: int
    path: str
    similarity: float
    query_face: int
    face_id: int


@dataclass(frozen=True)
class RecognizerStats:
    """One recognizer's share: `rows` in its file, of which `dead_rows` are replaced faces."""

    dim: int | None  # None while none of its images had a face
    dtype: str | None
    faces: int
    rows: int
    dead_rows: int
    assets: int  # images indexed with this recognizer, with or without faces


@dataclass(frozen=True)
class IndexStats:
    assets: int
    faces: int
    recognizers: dict[str, RecognizerStats]
