from __future__ import annotations

from datetime import datetime

import pytest
from PIL import Image

from engine.io.metadata import (
    EXIF_HEADER,
    parse_exif_datetime,
    reset_orientation,
    with_exif_header,
    without_exif_header,
)


def _orientation(exif: bytes) -> int:
    parsed = Image.Exif()
    parsed.load(exif)
    return parsed[0x0112]


@pytest.mark.parametrize("orientation", range(2, 9))
def test_reset_orientation_patches_only_the_value(make_exif, orientation: int) -> None:
    exif = make_exif(orientation)
    reset = reset_orientation(exif)
    assert _orientation(reset) == 1
    assert len(reset) == len(exif)
    assert sum(a != b for a, b in zip(reset, exif, strict=True)) == 1


def test_reset_orientation_works_on_bare_tiff_and_leaves_garbage_alone(make_exif) -> None:
    bare = without_exif_header(make_exif(6))
    assert not bare.startswith(EXIF_HEADER)
    assert _orientation(with_exif_header(reset_orientation(bare))) == 1
    for garbage in (b"", b"not exif at all", EXIF_HEADER + b"II*\x00\xff\xff\x00\x00"):
        assert reset_orientation(garbage) == garbage


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019:05:06 07:08:09", datetime(2019, 5, 6, 7, 8, 9)),
        ("2019-05-06T07:08:09", datetime(2019, 5, 6, 7, 8, 9)),
        (b"2019:05:06 07:08:09\x00", datetime(2019, 5, 6, 7, 8, 9)),
        ("0000:00:00 00:00:00", None),
        ("2019:13:40 07:08:09", None),
        ("    :  :     :  :  ", None),
        (None, None),
        (42, None),
    ],
)
def test_parse_exif_datetime(value: object, expected: datetime | None) -> None:
    assert parse_exif_datetime(value) == expected
