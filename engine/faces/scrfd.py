"""SCRFD face detection (insightface's model class) on an ONNX Runtime session.

insightface's `SCRFD` does the letterbox, the (x - 127.5) / 128 RGB blob, the anchor decode
and NMS exactly as Immich runs them; this class adds only AMP's conventions: RGB input,
results as DetectedFace, thresholds as options. Official SCRFD exports take one image per
run (batch axis fixed at 1), so several images are detected one after another.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from insightface.model_zoo.scrfd import SCRFD

from engine.errors import OptionError, UnsupportedModelError
from engine.faces.boxes import clip_face, map_faces
from engine.faces.pixels import as_rgb8
from engine.faces.types import DetectedFace

DEFAULT_INPUT_PX = 640
DEFAULT_DET_THRESH = 0.7  # Immich's minScore
DEFAULT_NMS_THRESH = 0.4


def letterbox_size(width: int, height: int, input_px: int) -> tuple[int, int]:
    """The size insightface's SCRFD resizes an image to inside its square input (its own
    arithmetic, truncations included, so a pre-resized image is not resized again)."""
    if height / width > 1.0:
        return int(input_px / (height / width)), input_px
    return input_px, int(input_px * (height / width))


class ScrfdDetector:
    """Faces from an SCRFD model with keypoints (`det_10g.onnx`, or any 9/15-output export)."""

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        model_file: Path,
        name: str,
        det_thresh: float = DEFAULT_DET_THRESH,
        nms_thresh: float = DEFAULT_NMS_THRESH,
        input_px: int | None = None,
    ) -> None:
        for label, value in (("det_thresh", det_thresh), ("nms_thresh", nms_thresh)):
            if not 0.0 <= value <= 1.0:
                raise OptionError(f"{label} must be in [0, 1], got {value}")
        # model_file lets insightface read the graph's own input shape (fixed or dynamic).
        self._model = SCRFD(model_file=str(model_file), session=session)
        if not self._model.use_kps:
            raise UnsupportedModelError(
                f"{model_file} is an SCRFD model without keypoints; faces cannot be aligned "
                "without them: use a *_kps / *_bnkps export such as det_10g.onnx"
            )
        fixed = self._model.static_input_size  # (width, height) or None when dynamic
        if fixed is not None:
            if fixed[0] != fixed[1]:
                raise UnsupportedModelError(f"{model_file} has a non-square input {fixed}")
            if input_px is not None and input_px != fixed[0]:
                raise OptionError(
                    f"{model_file} has a fixed {fixed[0]}px input; "
                    f"input size {input_px} cannot be used with it"
                )
            input_px = fixed[0]
        input_px = DEFAULT_INPUT_PX if input_px is None else input_px
        if input_px < 32 or input_px % 32:
            raise OptionError(f"SCRFD input size must be a multiple of 32, got {input_px}")
        self._model.nms_thresh = nms_thresh
        self.name = name
        self.input_px = input_px
        self.det_thresh = det_thresh
        self.nms_thresh = nms_thresh

    def detect(self, image_rgb: np.ndarray) -> list[DetectedFace]:
        image = as_rgb8(image_rgb)
        height, width = image.shape[:2]
        fit_w, fit_h = letterbox_size(width, height, self.input_px)
        if fit_w < width:
            # insightface shrinks with bilinear interpolation, which aliases a large photo
            # (a 3000 px group photo lost a face that way); an area average does not, and
            # insightface's own resize of the result is then the identity.
            image = cv2.resize(image, (fit_w, fit_h), interpolation=cv2.INTER_AREA)
        scale_xy = (width / image.shape[1], height / image.shape[0])
        # insightface takes OpenCV's BGR order and swaps to RGB in its blob.
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        dets, kpss = self._model.detect(
            bgr, input_size=(self.input_px, self.input_px), det_thresh=self.det_thresh
        )
        faces = [
            DetectedFace(
                box_xyxy=(float(d[0]), float(d[1]), float(d[2]), float(d[3])),
                landmarks_xy=np.asarray(k, dtype=np.float32).reshape(5, 2),
                score=float(d[4]),
                detector=self.name,
            )
            for d, k in zip(dets, kpss, strict=True)
        ]
        return [clip_face(f, width, height) for f in map_faces(faces, scale_xy=scale_xy)]

    def detect_many(self, images_rgb: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        """One list per image (the model runs one image at a time)."""
        return [self.detect(image) for image in images_rgb]
