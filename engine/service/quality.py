"""A no-reference quality score in [0, 1] for `output_metadata.quality_score`.

The mean of three measured sub-scores of the luma (BT.601) of the image:

- sharpness: variance of the Laplacian (the usual focus measure), mapped by
  1 - exp(-variance / 300): a soft, out-of-focus photo has a variance near 0-50, a crisp one
  several hundred or more;
- exposure: 1 minus the share of pixels clipped to black (<= 2) or white (>= 253), times a
  penalty for a mean luma far from mid-grey: 1 - |mean - 128| / 128;
- contrast: the standard deviation of luma over 64 (about the spread of a well-exposed photo),
  capped at 1.

It ranks photos of one library sensibly (blurred, clipped or flat ones score lower); it is
not a model of human opinion like BRISQUE or NIMA, and says so.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SHARPNESS_SCALE = 300.0
CONTRAST_SCALE = 64.0
# Analysed at most this long a side: the score is about the photo, not its megapixels.
ANALYSIS_PX = 1024


def quality_score(rgb: np.ndarray) -> float:
    """Score an HxWx3 (or HxW) uint8 image; see the module docstring for the definition."""
    grey = rgb if rgb.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    scale = ANALYSIS_PX / max(grey.shape)
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    luma = grey.astype(np.float64)
    sharpness = 1.0 - math.exp(-cv2.Laplacian(luma, cv2.CV_64F).var() / SHARPNESS_SCALE)
    clipped = float(np.mean((grey <= 2) | (grey >= 253)))
    exposure = (1.0 - clipped) * (1.0 - abs(luma.mean() - 128.0) / 128.0)
    contrast = min(1.0, luma.std() / CONTRAST_SCALE)
    return round(float(np.clip((sharpness + exposure + contrast) / 3.0, 0.0, 1.0)), 4)
