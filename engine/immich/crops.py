"""Face crops for the report: a square around the face, small enough to inline as JPEG."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image


def crop_face(
    rgb: np.ndarray, box_xyxy: Sequence[float], size_px: int = 112, margin: float = 0.25
) -> np.ndarray:
    """A `size_px` square RGB crop centred on the face, its side the box's longer side plus
    `margin` of it on each side. The square is shifted, then shrunk, to stay inside the image
    rather than padded, so a face at the border is shown off-centre instead of cut by a band."""
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    side = max(x2 - x1, y2 - y1, 1.0) * (1.0 + 2.0 * margin)
    side = min(side, float(width), float(height))
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left = int(round(min(max(cx - side / 2.0, 0.0), width - side)))
    top = int(round(min(max(cy - side / 2.0, 0.0), height - side)))
    n = max(1, int(round(side)))
    patch = rgb[top : top + n, left : left + n]
    if patch.ndim == 2:
        patch = np.repeat(patch[:, :, None], 3, axis=2)
    # INTER_AREA averages when shrinking (no aliasing); enlarging a tiny face uses cubic.
    shrinking = patch.shape[0] >= size_px
    return cv2.resize(
        np.ascontiguousarray(patch[:, :, :3]),
        (size_px, size_px),
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC,
    )


def to_data_uri_jpeg(rgb: np.ndarray, quality: int = 85) -> str:
    """`data:image/jpeg;base64,...` of an HxWx3 uint8 RGB image."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(
        buffer, format="JPEG", quality=quality
    )
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
