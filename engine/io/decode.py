"""Read an image file into upright RGB(A)/gray pixels plus the metadata worth carrying on.

The file is read once. Pillow parses the header and metadata of those bytes lazily (no pixel
decode), which lets the pixel-count guard run before any large allocation; OpenCV then decodes
the pixels, keeping 16-bit samples, alpha and grayscale, which Pillow would narrow.
"""

from __future__ import annotations

import io
import stat
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal

import cv2
import numpy as np
from PIL import (
    BmpImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from engine.errors import ImageReadError, ImageTooLargeError, OptionError
from engine.io.metadata import (
    descriptive_exif,
    read_orientation,
    read_taken_at,
    reset_orientation,
    with_exif_header,
)
from engine.io.orientation import apply_exif_orientation

# 250 megapixels: above every single-shot camera sensor (150 MP medium format) and most
# stitched panoramas, while bounding one decode to about 0.75 GB (8-bit RGB) or 2 GB (16-bit
# RGBA) before any enhancement. A file claiming more is far more likely a decompression bomb
# than a photo; trusted larger files can raise the limit.
DEFAULT_MAX_PIXELS = 250_000_000

InputFormat = Literal["jpeg", "png", "tiff", "webp", "bmp"]

# Pillow plugin classes, constructed directly rather than through `Image.open`: `Image.open`
# runs Pillow's own decompression-bomb check against the process-wide
# `Image.MAX_IMAGE_PIXELS` (a warning above 89 MP, an error above 179 MP), which would fire
# before, and disagree with, AMP's configurable limit.
_HEADER_PARSERS: dict[InputFormat, type[ImageFile.ImageFile]] = {
    "jpeg": JpegImagePlugin.JpegImageFile,
    "png": PngImagePlugin.PngImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
    "bmp": BmpImagePlugin.BmpImageFile,
}

# Pillow modes whose pixels OpenCV decodes faithfully (1-bit and palette images expanded to
# gray / BGR(A), 16-bit samples kept), except for TIFFs with alpha: see _libtiff_mangles_alpha.
_OPENCV_MODES = frozenset({"1", "L", "P", "RGB", "RGBA", "I;16", "I;16L", "I;16B", "LA"})
# Modes OpenCV gets wrong (TIFF CMYK comes back as raw ink values) that Pillow converts well,
# to 8-bit RGB(A). Pillow's own bomb check still runs when it loads a TIFF (a warning, silenced,
# above 89 MP; an error, reported as unreadable, above 179 MP): rare for these modes.
_PILLOW_MODES = frozenset({"CMYK", "YCbCr", "LAB", "HSV", "LA", "La", "PA", "RGBa", "RGBX"})
BITS_PER_SAMPLE = 258
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBa", "RGBA"})

# What Pillow raises on malformed headers, EXIF or pixel data; it has no single base class.
PILLOW_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    Image.DecompressionBombError,
)


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous
class DecodedImage:
    pixels: np.ndarray  # upright; HxW gray, HxWx3 RGB or HxWx4 RGBA; uint8 or uint16 as stored
    format: InputFormat
    exif: bytes | None  # APP1 form (b"Exif\0\0" + TIFF), Orientation reset to 1
    icc_profile: bytes | None
    taken_at: datetime | None  # EXIF DateTimeOriginal / Digitized / DateTime, naive local time
    source_bytes: int

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def channels(self) -> int:
        return 1 if self.pixels.ndim == 2 else int(self.pixels.shape[2])

    @property
    def bit_depth(self) -> int:
        return self.pixels.dtype.itemsize * 8


def read_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode `path` (JPEG, PNG, TIFF, WebP or BMP, recognised by content, not suffix).

    Raises ImageReadError when the file is missing, not a regular file, empty, corrupt or
    not a supported image; ImageTooLargeError when it has more than `max_pixels` pixels,
    checked from the header before any pixel is decoded.
    """
    if max_pixels < 1:
        raise OptionError(f"max_pixels must be positive, got {max_pixels}")
    data = _read_bytes(path)
    format = _sniff_format(data)
    if format is None:
        raise ImageReadError(
            path, "not a JPEG, PNG, TIFF, WebP or BMP file (its content matches none of them)"
        )
    # Pillow warns about damaged EXIF and keeps what it could parse; a damaged tag must not
    # stop a photo, and the warning would only be noise in AMP's output.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = _parse_header(path, data, format)
        pixel_count = header.width * header.height
        if pixel_count > max_pixels:
            raise ImageTooLargeError(path, pixel_count, max_pixels)
        parsed_exif = _parse_exif(header)
        exif = _exif_block(header, parsed_exif)
        pixels = _decode_upright(path, data, header, format, read_orientation(parsed_exif))
    return DecodedImage(
        pixels=pixels,
        format=format,
        exif=reset_orientation(exif) if exif else None,
        icc_profile=header.info.get("icc_profile") or None,
        taken_at=read_taken_at(parsed_exif),
        source_bytes=len(data),
    )


@dataclass(frozen=True)
class ImageInfo:
    """What the header says, without decoding pixels."""

    format: InputFormat
    taken_at: datetime | None


def probe_image(path: Path) -> ImageInfo:
    """Format and capture time from the file's header and EXIF alone.

    Cheap enough to decide, before decoding, whether a photo's output already exists: Pillow
    reads the header lazily, so a JPEG costs its first segments, not its pixels.
    """
    with _opened(path) as file:
        format = _sniff_format(file.read(16))
        if format is None:
            raise ImageReadError(path, "not a JPEG, PNG, TIFF, WebP or BMP file")
        file.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = _parse_header(path, file, format)
            return ImageInfo(format, read_taken_at(_parse_exif(header)))


@contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """`path` open for reading; every way that can fail becomes an ImageReadError."""
    try:
        # stat first: reading a FIFO or device would block or never end.
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise ImageReadError(path, "it is a directory; give an image file")
        if not stat.S_ISREG(mode):
            raise ImageReadError(path, "not a regular file")
        with path.open("rb") as file:
            yield file
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied; check the file's permissions") from None
    except OSError as exc:
        raise ImageReadError(path, exc.strerror or str(exc)) from exc


def _read_bytes(path: Path) -> bytes:
    with _opened(path) as file:
        data = file.read()
    if not data:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    return data


def _sniff_format(data: bytes) -> InputFormat | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic and BigTIFF
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"BM"):
        return "bmp"
    return None


def _parse_header(path: Path, data: bytes | BinaryIO, format: InputFormat) -> ImageFile.ImageFile:
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        header = _HEADER_PARSERS[format](source)
    except PILLOW_ERRORS as exc:
        raise ImageReadError(path, f"damaged {format.upper()} header ({exc})") from exc
    if header.width < 1 or header.height < 1:
        raise ImageReadError(path, f"the header claims a {header.width}x{header.height} image")
    return header


def _parse_exif(header: ImageFile.ImageFile) -> Image.Exif:
    try:
        parsed = header.getexif()
        parsed.get_ifd(0x8769)  # parse the sub-IFD now, inside this guard
        return parsed
    except PILLOW_ERRORS:
        return Image.Exif()  # unreadable EXIF is treated as none: the pixels are still fine


def _exif_block(header: ImageFile.ImageFile, parsed: Image.Exif) -> bytes | None:
    raw = header.info.get("exif")
    if raw:
        return with_exif_header(raw)
    if header.format == "TIFF":
        try:
            return descriptive_exif(parsed)
        except PILLOW_ERRORS:
            return None
    return None


def _decode_upright(
    path: Path, data: bytes, header: ImageFile.ImageFile, format: InputFormat, orientation: int
) -> np.ndarray:
    mode = header.mode
    if mode in _OPENCV_MODES and not _libtiff_mangles_alpha(header):
        pixels = _decode_with_opencv(path, data, format)
        # OpenCV's TIFF decoder applies the TIFF Orientation tag itself, whatever the flags;
        # for the other formats IMREAD_UNCHANGED leaves the EXIF orientation to us.
        return pixels if format == "tiff" else apply_exif_orientation(pixels, orientation)
    if mode in _OPENCV_MODES or mode in _PILLOW_MODES:
        return apply_exif_orientation(_decode_with_pillow(path, header), orientation)
    raise ImageReadError(
        path,
        f"pixel mode {mode!r} (e.g. 32-bit or floating-point samples) is not supported; "
        "export the image as 8- or 16-bit RGB or grayscale",
    )


def _libtiff_mangles_alpha(header: ImageFile.ImageFile) -> bool:
    """OpenCV reads 8-bit TIFFs with alpha through libtiff's RGBA interface, which multiplies
    the colour by the alpha (lossy); gray+alpha TIFFs lose their alpha altogether."""
    if not isinstance(header, TiffImagePlugin.TiffImageFile):
        return False
    bits = header.tag_v2.get(BITS_PER_SAMPLE, 8)
    eight_bit = max(bits) <= 8 if isinstance(bits, tuple) else bits <= 8
    return header.mode == "LA" or (header.mode == "RGBA" and eight_bit)


def _decode_with_opencv(path: Path, data: bytes, format: InputFormat) -> np.ndarray:
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageReadError(path, f"OpenCV cannot decode it ({exc.err})") from exc
    if decoded is None:
        raise ImageReadError(path, f"the {format.upper()} data is corrupt or truncated")
    if decoded.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(
            path, f"{decoded.dtype} samples are not supported; export as 8- or 16-bit"
        )
    if decoded.ndim == 3 and decoded.shape[2] == 1:
        return decoded[:, :, 0]
    if decoded.ndim == 3:
        code = cv2.COLOR_BGR2RGB if decoded.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        return cv2.cvtColor(decoded, code)
    return decoded


def _decode_with_pillow(path: Path, header: ImageFile.ImageFile) -> np.ndarray:
    has_alpha = header.mode in _ALPHA_MODES or "transparency" in header.info
    try:
        return np.array(header.convert("RGBA" if has_alpha else "RGB"))
    except PILLOW_ERRORS as exc:
        raise ImageReadError(path, f"the pixel data is corrupt or truncated ({exc})") from exc
