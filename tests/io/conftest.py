"""Fixtures for the io tests. Input files are made by Pillow, never by the code under test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

TAKEN = "2019:05:06 07:08:09"

ExifFactory = Callable[..., bytes]
PixelFactory = Callable[..., np.ndarray]
FileWriter = Callable[[str, bytes], Path]


@pytest.fixture(scope="session")
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="session")
def make_exif() -> ExifFactory:
    """EXIF in APP1 form with Make, Orientation and (in the Exif sub-IFD) DateTimeOriginal."""

    def _make(orientation: int = 1, taken: str | None = TAKEN, make: str = "AmpCam") -> bytes:
        exif = Image.Exif()
        exif[0x010F] = make
        exif[0x0112] = orientation
        if taken is not None:
            exif.get_ifd(0x8769)[0x9003] = taken
        return exif.tobytes()

    return _make


@pytest.fixture(scope="session")
def make_pixels() -> PixelFactory:
    """Pixels that all differ, so any flip, rotation or channel swap changes the array;
    16-bit ones use values above 255 so that a narrowing to 8 bits shows."""

    def _make(shape: tuple[int, ...] = (6, 9, 3), dtype: type = np.uint8) -> np.ndarray:
        count = int(np.prod(shape))
        top = np.iinfo(dtype).max
        values = np.arange(count, dtype=np.int64) * (top // count)
        return values.reshape(shape).astype(dtype)

    return _make


@pytest.fixture
def write(tmp_path: Path) -> FileWriter:
    def _write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return _write
