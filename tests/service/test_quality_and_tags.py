"""output_metadata's quality score and tags follow their documented definitions."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from engine.faces.types import DetectedFace
from engine.service.quality import quality_score
from engine.service.tags import face_tags


def test_quality_score_ranks_degraded_versions_of_a_photo_lower(faces_dir: Path) -> None:
    with Image.open(faces_dir / "barack_obama" / "obama.jpg") as im:
        photo = np.asarray(im.convert("RGB"))
    original = quality_score(photo)
    assert 0.0 <= original <= 1.0
    assert quality_score(cv2.GaussianBlur(photo, (0, 0), 4)) < original - 0.1
    assert quality_score((photo * 0.2).astype(np.uint8)) < original - 0.3
    assert quality_score(np.full_like(photo, 128)) < original - 0.2
    assert quality_score(np.zeros((16, 16), np.uint8)) == 0.0  # black: clipped, dark, flat


def _face(box: tuple[float, float, float, float], score: float) -> DetectedFace:
    return DetectedFace(box, np.zeros((5, 2), np.float32), score, "test")


def test_tags_come_from_the_faces_only() -> None:
    assert face_tags([], 100, 100) == []
    close_up = face_tags([_face((0, 0, 40, 40), 0.9)], 100, 100)  # 16 % of the frame
    assert close_up == [
        {"tag": "people", "confidence": 0.9},
        {"tag": "portrait", "confidence": 0.9},
    ]
    distant = face_tags([_face((0, 0, 10, 10), 0.8)], 100, 100)  # 1 %: people, not a portrait
    assert [t["tag"] for t in distant] == ["people"]
    half = face_tags([_face((0, 0, 25, 25), 0.8)], 100, 100)  # 6.25 % -> 0.8 x 0.625
    assert half[1] == {"tag": "portrait", "confidence": 0.5}
    crowd = face_tags(
        [_face((i, 0, i + 5, 5), s) for i, s in enumerate((0.9, 0.8, 0.7, 0.5))], 100, 100
    )
    assert crowd == [{"tag": "people", "confidence": 0.9}, {"tag": "group", "confidence": 0.8}]
