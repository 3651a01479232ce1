"""EXIF helpers: header normalisation, orientation, capture time. Pure functions on bytes.

AMP passes EXIF around in the APP1 form, `b"Exif\\0\\0"` followed by a TIFF structure: the
form JPEG stores and Pillow's `save(exif=...)` accepts for every format. PNG's eXIf chunk and
WebP's EXIF chunk hold the bare TIFF structure, hence the two conversions below.
"""

from __future__ import annotations

import re
import struct
from datetime import datetime

from PIL import Image

from engine.io.tiff_ifd import SHORT, read_ifd0

EXIF_HEADER = b"Exif\x00\x00"

ORIENTATION = 0x0112
DATETIME = 0x0132
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
DATETIME_ORIGINAL = 0x9003
DATETIME_DIGITIZED = 0x9004

# IFD0 tags that describe the photo rather than the pixel layout of the file they sit in. A TIFF
# keeps its EXIF in its own IFD0, next to strip offsets and sample formats that must not be
# copied into another file; these are the ones that travel.
DESCRIPTIVE_IFD0_TAGS = (
    0x010E,  # ImageDescription
    0x010F,  # Make
    0x0110,  # Model
    ORIENTATION,
    0x0131,  # Software
    DATETIME,
    0x013B,  # Artist
    0x8298,  # Copyright
)
SUB_IFD_TAGS = (EXIF_IFD, GPS_IFD)

_EXIF_DATETIME = re.compile(r"\s*(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


def with_exif_header(exif: bytes) -> bytes:
    return exif if exif.startswith(EXIF_HEADER) else EXIF_HEADER + exif


def without_exif_header(exif: bytes) -> bytes:
    return exif[len(EXIF_HEADER) :] if exif.startswith(EXIF_HEADER) else exif


def reset_orientation(exif: bytes) -> bytes:
    """`exif` with its Orientation set to 1 (upright), every other byte untouched.

    Patching the one value in place, rather than re-serialising with Pillow, keeps maker
    notes and the thumbnail, whose internal offsets a rewrite would break. Blocks without an
    Orientation entry, or too damaged to find it, are returned as they are.
    """
    start = len(EXIF_HEADER) if exif.startswith(EXIF_HEADER) else 0
    tiff = exif[start:]
    ifd0 = read_ifd0(tiff)
    if ifd0 is None or ORIENTATION not in ifd0.entries:
        return exif
    entry = ifd0.entries[ORIENTATION]
    kind, count = struct.unpack_from(ifd0.endian + "HI", tiff, entry + 2)
    if kind != SHORT or count != 1:
        return exif
    patched = bytearray(exif)
    struct.pack_into(ifd0.endian + "H", patched, start + entry + 8, 1)
    return bytes(patched)


def read_orientation(exif: Image.Exif) -> int:
    """The Orientation tag, 1 when absent or not a number."""
    value = exif.get(ORIENTATION, 1)
    return value if isinstance(value, int) else 1


def read_taken_at(exif: Image.Exif) -> datetime | None:
    """When the photo was taken: DateTimeOriginal, else DateTimeDigitized, else DateTime.

    EXIF times are local wall-clock times without a zone, so the result is naive.
    """
    sub_ifd = exif.get_ifd(EXIF_IFD)
    for value in (
        sub_ifd.get(DATETIME_ORIGINAL),
        sub_ifd.get(DATETIME_DIGITIZED),
        exif.get(DATETIME),
    ):
        parsed = parse_exif_datetime(value)
        if parsed is not None:
            return parsed
    return None


def parse_exif_datetime(value: object) -> datetime | None:
    """Parse "YYYY:MM:DD HH:MM:SS" (also with dashes or a T, as some software writes it).

    Blank, zeroed ("0000:00:00 00:00:00") and impossible dates give None.
    """
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    match = _EXIF_DATETIME.match(value)
    if match is None:
        return None
    try:
        return datetime(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def descriptive_exif(exif: Image.Exif) -> bytes | None:
    """An EXIF block holding only the descriptive IFD0 tags and the Exif and GPS sub-IFDs.

    Used for TIFF sources, whose IFD0 mixes photo metadata with the file's own layout.
    """
    kept = Image.Exif()
    for tag in DESCRIPTIVE_IFD0_TAGS:
        if tag in exif:
            kept[tag] = exif[tag]
    for tag in SUB_IFD_TAGS:
        sub_ifd = exif.get_ifd(tag)
        if sub_ifd:
            kept[tag] = dict(sub_ifd)
    if not len(kept):
        return None
    return kept.tobytes()
