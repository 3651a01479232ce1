"""Read image file directories (IFDs) of a classic TIFF structure: bytes in, entry positions out.

EXIF blocks are TIFF structures too, so the same reader serves both. It lists where each
12-byte entry sits, so that entries can be copied or patched without decoding every tag type.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SHORT = 3
ENTRY_BYTES = 12


@dataclass(frozen=True)
class Ifd:
    endian: str  # struct prefix: "<" (II, Intel) or ">" (MM, Motorola)
    offset: int  # where the IFD starts
    entries: dict[int, int]  # tag -> position of its 12-byte entry
    next_offset: int  # where the next IFD starts, 0 when none


def read_ifd0(tiff: bytes) -> Ifd | None:
    """IFD0 of `tiff`, or None when the bytes are not a classic TIFF or IFD0 runs past the end."""
    endian = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if endian is None or len(tiff) < 8 or struct.unpack_from(endian + "H", tiff, 2)[0] != 42:
        return None
    (offset,) = struct.unpack_from(endian + "I", tiff, 4)
    return read_ifd(tiff, offset, endian)


def read_ifd(tiff: bytes, offset: int, endian: str) -> Ifd | None:
    """The IFD at `offset`, or None when it runs past the end of `tiff`."""
    if offset + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(endian + "H", tiff, offset)
    end = offset + 2 + count * ENTRY_BYTES
    if end + 4 > len(tiff):
        return None
    entries = {
        struct.unpack_from(endian + "H", tiff, position)[0]: position
        for position in range(offset + 2, end, ENTRY_BYTES)
    }
    (next_offset,) = struct.unpack_from(endian + "I", tiff, end)
    return Ifd(endian=endian, offset=offset, entries=entries, next_offset=next_offset)
