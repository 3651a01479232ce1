"""Pure geometry on detected faces: move them between pixel grids, and merge duplicates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from engine.faces.types import DetectedFace


def map_face(
    face: DetectedFace,
    *,
    scale_xy: tuple[float, float] = (1.0, 1.0),
    offset_xy: tuple[float, float] = (0.0, 0.0),
) -> DetectedFace:
    """`face` found in a scaled and/or cropped image, in the source image's pixels.

    A point (x, y) of the derived image is (x * sx + ox, y * sy + oy) in the source: `scale_xy`
    is source pixels per derived pixel (e.g. 8 for a 1/8 JPEG decode, 1/r for an image resized
    by r), `offset_xy` the derived image's top-left corner in the source (a tile's origin).
    """
    sx, sy = scale_xy
    ox, oy = offset_xy
    x1, y1, x2, y2 = face.box_xyxy
    box = (x1 * sx + ox, y1 * sy + oy, x2 * sx + ox, y2 * sy + oy)
    landmarks = face.landmarks_xy.astype(np.float32) * np.float32((sx, sy)) + np.float32((ox, oy))
    return replace(face, box_xyxy=tuple(float(v) for v in box), landmarks_xy=landmarks)


def map_faces(
    faces: Sequence[DetectedFace],
    *,
    scale_xy: tuple[float, float] = (1.0, 1.0),
    offset_xy: tuple[float, float] = (0.0, 0.0),
) -> list[DetectedFace]:
    return [map_face(f, scale_xy=scale_xy, offset_xy=offset_xy) for f in faces]


def iou_xyxy(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes in continuous coordinates (no +1 pixel convention)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def nms_faces(faces: Sequence[DetectedFace], iou_thresh: float) -> list[DetectedFace]:
    """Greedy non-maximum suppression: best score first, dropping boxes overlapping a kept one
    by more than `iou_thresh`. Ties keep input order, so the result is deterministic."""
    order = sorted(range(len(faces)), key=lambda i: -faces[i].score)
    kept: list[DetectedFace] = []
    for i in order:
        if all(iou_xyxy(faces[i].box_xyxy, k.box_xyxy) <= iou_thresh for k in kept):
            kept.append(faces[i])
    return kept


def clip_face(face: DetectedFace, width: int, height: int) -> DetectedFace:
    """`face` with its box clipped to the image; landmarks are left as predicted (a nose just
    outside the frame is still where the model believes it is, and alignment needs it)."""
    x1, y1, x2, y2 = face.box_xyxy
    box = (
        min(max(x1, 0.0), float(width)),
        min(max(y1, 0.0), float(height)),
        min(max(x2, 0.0), float(width)),
        min(max(y2, 0.0), float(height)),
    )
    return replace(face, box_xyxy=box)
