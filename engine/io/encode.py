"""Encode pixels (RGB order, uint8 or uint16) to file bytes, carrying EXIF and ICC along.

Which library writes what, and why:
- JPEG, WebP: Pillow, which writes EXIF and ICC itself. Both hold 8 bits only.
- BMP: Pillow, 8 bits; the format has no place for EXIF or ICC, which are dropped.
- PNG: OpenCV, the only one of the three that writes 16-bit RGB/RGBA PNG; the eXIf and iCCP
  chunks are spliced in afterwards (`png_chunks`). One path for 8 and 16 bits.
- TIFF: tifffile (8 and 16 bits, ICC via its own tag); EXIF is attached afterwards
  (`tiff_exif`), since tifffile will not write the Exif and GPS pointers.
"""

from __future__ import annotations

import io
from typing import Literal

import cv2
import numpy as np
import tifffile
from PIL import Image

from engine.errors import OptionError
from engine.io.metadata import with_exif_header
from engine.io.png_chunks import exif_chunk, iccp_chunk, insert_chunks
from engine.io.tiff_exif import attach_exif

OutputFormat = Literal["jpeg", "png", "tiff", "webp", "bmp"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("jpeg", "png", "tiff", "webp", "bmp")
# The extension each format gets when AMP names a file.
FILE_EXTENSIONS: dict[str, str] = {
    "jpeg": "jpg",
    "png": "png",
    "tiff": "tif",
    "webp": "webp",
    "bmp": "bmp",
}

# At and above this quality JPEG keeps full-resolution colour (4:4:4): chroma subsampling
# would halve the colour detail an enhancement just restored. Below it the user has asked for
# small files, and Pillow's 4:2:0 default is the better trade.
FULL_CHROMA_QUALITY = 90


def encode_image(
    pixels: np.ndarray,
    format: str,
    *,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
    quality: int = 95,
) -> bytes:
    """Encode HxW, HxWx3 (RGB) or HxWx4 (RGBA) uint8/uint16 `pixels` as `format`.

    `exif` may be in APP1 form (b"Exif\\0\\0" + TIFF) or bare; it is written as given, so
    reset its Orientation first if the pixels are upright. `quality` (1-100) applies to JPEG
    and WebP. JPEG, WebP and BMP hold 8 bits: 16-bit pixels are rounded to 8 bits for them;
    BMP keeps no EXIF or ICC.
    Raises OptionError for an unknown format, a quality outside 1-100, or alpha with JPEG.
    """
    pixels = _checked(pixels)
    if format == "jpeg":
        return _encode_jpeg(pixels, exif, icc_profile, quality)
    if format == "webp":
        return _encode_webp(pixels, exif, icc_profile, quality)
    if format == "png":
        return _encode_png(pixels, exif, icc_profile)
    if format == "tiff":
        return _encode_tiff(pixels, exif, icc_profile)
    if format == "bmp":
        return _pillow_save(pixels, "BMP")
    raise OptionError(f"cannot write format {format!r}: choose one of {', '.join(OUTPUT_FORMATS)}")


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """8-bit copy of uint8/uint16 pixels; 16-bit values are scaled by 255/65535 and rounded."""
    if pixels.dtype == np.uint8:
        return pixels
    # x * 255 / 65535 == x / 257; adding half the divisor rounds to nearest.
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _checked(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"pixels must be uint8 or uint16, got {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise ValueError(f"pixels must be HxW, HxWx3 or HxWx4, got shape {pixels.shape}")
    if pixels.size == 0:
        raise ValueError("pixels are empty")
    return np.ascontiguousarray(pixels)


def _checked_quality(quality: int) -> int:
    if not 1 <= quality <= 100:
        raise OptionError(f"quality must be between 1 and 100, got {quality}")
    return quality


def _has_alpha(pixels: np.ndarray) -> bool:
    return pixels.ndim == 3 and pixels.shape[2] == 4


def _pillow_save(pixels: np.ndarray, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(pixels)).save(buffer, format=format, **options)
    return buffer.getvalue()


def _metadata_options(exif: bytes | None, icc_profile: bytes | None) -> dict[str, bytes]:
    options = {}
    if exif:
        options["exif"] = with_exif_header(exif)
    if icc_profile:
        options["icc_profile"] = icc_profile
    return options


def _encode_jpeg(
    pixels: np.ndarray, exif: bytes | None, icc_profile: bytes | None, quality: int
) -> bytes:
    quality = _checked_quality(quality)
    if _has_alpha(pixels):
        raise OptionError(
            "JPEG cannot store transparency and this image has an alpha channel: "
            "write png, tiff or webp instead"
        )
    options: dict[str, object] = {"quality": quality, **_metadata_options(exif, icc_profile)}
    if quality >= FULL_CHROMA_QUALITY:
        options["subsampling"] = 0
    return _pillow_save(pixels, "JPEG", **options)


def _encode_webp(
    pixels: np.ndarray, exif: bytes | None, icc_profile: bytes | None, quality: int
) -> bytes:
    quality = _checked_quality(quality)
    return _pillow_save(pixels, "WEBP", quality=quality, **_metadata_options(exif, icc_profile))


def _encode_png(pixels: np.ndarray, exif: bytes | None, icc_profile: bytes | None) -> bytes:
    if pixels.ndim == 3:
        code = cv2.COLOR_RGB2BGR if pixels.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        pixels = cv2.cvtColor(pixels, code)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise ValueError(f"OpenCV could not encode a PNG of shape {pixels.shape}")
    chunks = []
    if icc_profile:
        chunks.append(iccp_chunk(icc_profile))
    if exif:
        chunks.append(exif_chunk(exif))
    return insert_chunks(encoded.tobytes(), chunks)


def _encode_tiff(pixels: np.ndarray, exif: bytes | None, icc_profile: bytes | None) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        pixels,
        photometric="minisblack" if pixels.ndim == 2 else "rgb",
        # Deflate with a horizontal predictor: lossless, about halves photo sizes, and read by
        # every TIFF reader that matters (libtiff, Photoshop, GIMP, darktable).
        compression="zlib",
        predictor=True,
        iccprofile=icc_profile or None,
        # No tifffile shape JSON in ImageDescription: the source's description travels instead.
        metadata=None,
    )
    encoded = buffer.getvalue()
    return attach_exif(encoded, exif) if exif else encoded
