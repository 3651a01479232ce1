"""Factories for the index tests: faces, asset records and unit embeddings, made by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np
import pytest

from engine.faces.types import DetectedFace
from engine.index.types import AssetRecord

FaceFactory = Callable[..., DetectedFace]
AssetFactory = Callable[..., AssetRecord]


@pytest.fixture
def make_face() -> FaceFactory:
    def _make(i: int = 0, detector: str = "scrfd:test") -> DetectedFace:
        landmarks = (np.arange(10, dtype=np.float32).reshape(5, 2) + 0.125 * i).astype(np.float32)
        return DetectedFace(
            box_xyxy=(10.0 + i, 20.0 + i, 110.5 + i, 140.25 + i),
            landmarks_xy=landmarks,
            score=0.5 + 0.01 * i,
            detector=detector,
        )

    return _make


@pytest.fixture
def make_asset() -> AssetFactory:
    def _make(
        name: str, sha1: str | None = None, size: int = 1000, mtime_ns: int = 7
    ) -> AssetRecord:
        return AssetRecord(
            path=f"/photos/{name}",
            size=size,
            mtime_ns=mtime_ns,
            sha1=sha1 or f"sha-{name}",
            width=640,
            height=480,
            taken_at=datetime(2019, 5, 6, 7, 8, 9, tzinfo=timezone.utc),
        )

    return _make


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def make_unit() -> Callable[[np.random.Generator, int, int], np.ndarray]:
    return unit_rows
