"""Turn pixels stored in a camera's sensor orientation upright, as EXIF tag 0x0112 asks."""

from __future__ import annotations

import numpy as np


def apply_exif_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Return `pixels` (HxW or HxWxC) as they should be displayed for an EXIF orientation.

    1 and values outside 1..8 (absent or damaged tags) leave the array unchanged. The result
    is C-contiguous: flips and rotations are numpy views with negative strides, which
    `torch.from_numpy` and OpenCV refuse.
    """
    if orientation == 2:  # mirrored horizontally
        turned = pixels[:, ::-1]
    elif orientation == 3:  # rotated 180
        turned = pixels[::-1, ::-1]
    elif orientation == 4:  # mirrored vertically
        turned = pixels[::-1]
    elif orientation == 5:  # mirrored about the main diagonal
        turned = np.swapaxes(pixels, 0, 1)
    elif orientation == 6:  # stored 90 degrees counter-clockwise: turn clockwise
        turned = np.rot90(pixels, k=-1)
    elif orientation == 7:  # mirrored about the anti-diagonal
        turned = np.swapaxes(pixels, 0, 1)[::-1, ::-1]
    elif orientation == 8:  # stored 90 degrees clockwise: turn counter-clockwise
        turned = np.rot90(pixels, k=1)
    else:
        return pixels
    return np.ascontiguousarray(turned)
