from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from engine.io.orientation import apply_exif_orientation


def _reference(pixels: np.ndarray, orientation: int) -> np.ndarray:
    image = Image.fromarray(pixels)
    image.getexif()[0x0112] = orientation
    return np.asarray(ImageOps.exif_transpose(image))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("shape", [(3, 5), (3, 5, 3), (3, 5, 4)])
def test_matches_pillow_exif_transpose(orientation: int, shape: tuple[int, ...]) -> None:
    pixels = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    upright = apply_exif_orientation(pixels, orientation)
    np.testing.assert_array_equal(upright, _reference(pixels, orientation))
    assert upright.flags.c_contiguous


@pytest.mark.parametrize("orientation", [0, 9, -1, 1000])
def test_unknown_orientation_leaves_pixels_alone(orientation: int) -> None:
    pixels = np.arange(15, dtype=np.uint16).reshape(3, 5)
    assert apply_exif_orientation(pixels, orientation) is pixels
