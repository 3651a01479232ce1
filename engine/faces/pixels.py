"""Bring any decoded pixel array to what the face models take: HxWx3 uint8 RGB."""

from __future__ import annotations

import numpy as np


def as_rgb8(pixels: np.ndarray) -> np.ndarray:
    """`pixels` (HxW gray, HxWx1, HxWx3 RGB or HxWx4 RGBA; uint8 or uint16) as HxWx3 uint8 RGB.

    Alpha is dropped rather than composited: a face under a transparent area is still a face,
    and the detectors were trained on opaque photos. 16-bit samples keep their top 8 bits,
    which is exact for files that were 8-bit data scaled by 257.
    """
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected HxW, HxWx1, HxWx3 or HxWx4 pixels, got shape {pixels.shape}")
    if pixels.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
    return np.ascontiguousarray(pixels[:, :, :3])
