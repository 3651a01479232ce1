"""Draw detected faces onto a copy of an image: boxes, the five landmarks and scores."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from engine.faces.types import DetectedFace

# Left eye, right eye, nose, left mouth corner, right mouth corner (RGB).
LANDMARK_COLOURS = ((255, 64, 64), (64, 160, 255), (64, 220, 64), (255, 64, 255), (255, 200, 0))
BOX_COLOUR = (0, 255, 0)


def draw_faces(rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
    """A copy of the HxWx3 uint8 image with every face drawn; line widths follow image size."""
    canvas = np.ascontiguousarray(rgb.copy())
    thickness = max(1, round(max(canvas.shape[:2]) / 600))
    for face in faces:
        x0, y0, x1, y1 = (round(v) for v in face.box_xyxy)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), BOX_COLOUR, thickness)
        radius = max(2, thickness + 1)
        for (x, y), colour in zip(face.landmarks_xy, LANDMARK_COLOURS, strict=True):
            cv2.circle(canvas, (round(float(x)), round(float(y))), radius, colour, -1)
        label = f"{face.score:.2f}"
        scale = 0.4 * thickness
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(y0 - h - base - 2, 0)
        cv2.rectangle(canvas, (x0, top), (x0 + w + 2, top + h + base + 2), BOX_COLOUR, -1)
        cv2.putText(
            canvas,
            label,
            (x0 + 1, top + h + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            thickness,
            cv2.LINE_AA,
        )
    return canvas
