"""What the face stages exchange: detected faces and the two model roles, as plain data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class DetectedFace:
    """One face, in pixels of the upright original image (EXIF orientation applied)."""

    box_xyxy: tuple[float, float, float, float]
    landmarks_xy: np.ndarray  # (5, 2) float32: left eye, right eye, nose, left mouth, right mouth
    score: float
    detector: str  # e.g. "scrfd:det_10g", "yunet:2023mar"


class FaceDetector(Protocol):
    name: str

    def detect(self, image_rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in an upright HxWx3 uint8 RGB image, in that image's pixels."""
        ...


class FaceRecognizer(Protocol):
    name: str  # recorded with every embedding; searches never mix two names
    dim: int

    def embed(self, image_rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
        """(len(faces), dim) float32, each row L2-normalised."""
        ...
