"""YuNet face detection (MIT, opencv_zoo) through OpenCV's `FaceDetectorYN`.

The image is resized so that its longer side is `input_px` (the 2023mar export is traced at
640x640; OpenCV's DNN reshapes it to any size, so no letterbox padding is needed) and the
results are scaled back. YuNet's landmarks come as right eye, left eye, nose, right and left
mouth corner of the *person*, i.e. image-left first: the order DetectedFace and ArcFace use.
YuNet runs on OpenCV's CPU backend; it is small enough (0.2 MB) that this is rarely the
bottleneck next to embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from engine.errors import ModelError, OptionError
from engine.faces.boxes import clip_face
from engine.faces.pixels import as_rgb8
from engine.faces.types import DetectedFace

DEFAULT_INPUT_PX = 640
DEFAULT_SCORE_THRESH = 0.9  # opencv_zoo demo default, as in the manifest
DEFAULT_NMS_THRESH = 0.3
DEFAULT_TOP_K = 5000


def resized_size(width: int, height: int, long_side_px: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is `long_side_px`, at least 1 px each."""
    ratio = long_side_px / max(width, height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def faces_from_yunet(
    rows: np.ndarray, scale_xy: tuple[float, float], detector: str
) -> list[DetectedFace]:
    """FaceDetectorYN's (N, 15) rows [x, y, w, h, 5 x (x, y), score] as DetectedFace, with
    coordinates multiplied by `scale_xy` (original pixels per resized pixel)."""
    sx, sy = scale_xy
    faces = []
    for row in rows:
        x, y, w, h = (float(v) for v in row[:4])
        landmarks = row[4:14].reshape(5, 2).astype(np.float32) * np.float32((sx, sy))
        faces.append(
            DetectedFace(
                box_xyxy=(x * sx, y * sy, (x + w) * sx, (y + h) * sy),
                landmarks_xy=landmarks,
                score=float(row[14]),
                detector=detector,
            )
        )
    return faces


class YuNetDetector:
    def __init__(
        self,
        model_file: Path,
        *,
        name: str,
        score_thresh: float = DEFAULT_SCORE_THRESH,
        nms_thresh: float = DEFAULT_NMS_THRESH,
        top_k: int = DEFAULT_TOP_K,
        input_px: int = DEFAULT_INPUT_PX,
    ) -> None:
        for label, value in (("score_thresh", score_thresh), ("nms_thresh", nms_thresh)):
            if not 0.0 <= value <= 1.0:
                raise OptionError(f"{label} must be in [0, 1], got {value}")
        if input_px < 32:
            raise OptionError(f"YuNet input size must be at least 32 px, got {input_px}")
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(model_file), "", (input_px, input_px), score_thresh, nms_thresh, top_k
            )
        except cv2.error as exc:
            raise ModelError(
                f"OpenCV cannot load the YuNet model {model_file} ({exc.err}); the file is "
                "damaged or not a YuNet ONNX export: delete it and fetch it again"
            ) from exc
        self.name = name
        self.input_px = input_px
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh

    def detect(self, image_rgb: np.ndarray) -> list[DetectedFace]:
        image = as_rgb8(image_rgb)
        height, width = image.shape[:2]
        new_w, new_h = resized_size(width, height, self.input_px)
        shrink = new_w < width
        resized = cv2.resize(
            image, (new_w, new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )
        self._net.setInputSize((new_w, new_h))
        _, rows = self._net.detect(cv2.cvtColor(resized, cv2.COLOR_RGB2BGR))
        if rows is None:
            return []
        faces = faces_from_yunet(rows, (width / new_w, height / new_h), self.name)
        return [clip_face(f, width, height) for f in faces]

    def detect_many(self, images_rgb: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        """One list per image (FaceDetectorYN runs one image at a time)."""
        return [self.detect(image) for image in images_rgb]
