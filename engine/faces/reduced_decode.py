"""Decode a photo only as large as a detector needs, upright, and say how to scale back.

A JPEG is decoded at 1/2, 1/4 or 1/8 size by libjpeg's DCT scaling (Pillow's `draft`),
which skips most of the decode work: a 24 MP photo for a 640 px detector decodes at 1/4
(about 16x fewer pixels). The largest reduction that keeps the longer side at least
`long_side_px` is used, so the detector still downscales, never upscales. Other formats are
decoded in full. Pixel (x, y) of the reduced upright image is (x * scale, y * scale) in the
upright original: libjpeg maps each s x s block of the original onto one output pixel.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import JpegImagePlugin

from engine.errors import ImageReadError, ImageTooLargeError
from engine.faces.pixels import as_rgb8
from engine.io.decode import DEFAULT_MAX_PIXELS, PILLOW_ERRORS, read_image
from engine.io.metadata import read_orientation
from engine.io.orientation import apply_exif_orientation

_SWAPS_AXES = frozenset({5, 6, 7, 8})


@dataclass(frozen=True, eq=False)
class ReducedImage:
    pixels: np.ndarray  # HxWx3 uint8 RGB, upright
    scale: float  # original pixels per reduced pixel, on both axes (1, 2, 4 or 8)
    full_width: int  # of the upright original
    full_height: int


def draft_request(width: int, height: int, long_side_px: int) -> tuple[int, int]:
    """The size to ask Pillow's `draft` for: the image fitted so its longer side is
    `long_side_px` (draft then picks the largest DCT reduction at least that big)."""
    ratio = min(1.0, long_side_px / max(width, height))
    return max(1, int(width * ratio)), max(1, int(height * ratio))


def upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """Stored (width, height) as displayed after EXIF orientation."""
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def read_reduced(
    path: Path, long_side_px: int, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ReducedImage:
    """`path` decoded upright at the smallest JPEG reduction with a long side >= long_side_px;
    any other format (or a JPEG Pillow cannot reduce) in full."""
    data = _read_jpeg_bytes(path)
    if data is None:
        return _full(path, max_pixels)
    # Pillow warns about damaged EXIF and keeps what it could parse; see engine.io.decode.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # The plugin class, not Image.open: Image.open applies Pillow's own
            # decompression-bomb limit, which would disagree with `max_pixels`.
            jpeg = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
            stored_w, stored_h = jpeg.size
            if stored_w * stored_h > max_pixels:
                raise ImageTooLargeError(path, stored_w * stored_h, max_pixels)
            try:
                orientation = read_orientation(jpeg.getexif())
            except PILLOW_ERRORS:
                orientation = 1  # unreadable EXIF counts as none, as in engine.io.decode
            drafted = jpeg.draft("RGB", draft_request(stored_w, stored_h, long_side_px))
            scale = stored_w / drafted[1][2] if drafted else 1.0
            pixels = np.asarray(jpeg.convert("RGB"))
        except ImageTooLargeError:
            raise
        except PILLOW_ERRORS as exc:
            raise ImageReadError(path, f"the JPEG data is corrupt or truncated ({exc})") from exc
    full_w, full_h = upright_size(stored_w, stored_h, orientation)
    return ReducedImage(
        pixels=as_rgb8(apply_exif_orientation(pixels, orientation)),
        scale=float(scale),
        full_width=full_w,
        full_height=full_h,
    )


def _read_jpeg_bytes(path: Path) -> bytes | None:
    """The file's bytes when it is a JPEG; None for anything else (decoded in full)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None  # read_image reports missing/unreadable files with the right message
    return data if data.startswith(b"\xff\xd8\xff") else None


def _full(path: Path, max_pixels: int) -> ReducedImage:
    decoded = read_image(path, max_pixels=max_pixels)
    return ReducedImage(
        pixels=as_rgb8(decoded.pixels),
        scale=1.0,
        full_width=decoded.width,
        full_height=decoded.height,
    )
