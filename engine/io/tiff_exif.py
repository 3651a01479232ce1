"""Attach EXIF to a TIFF file written without it (tifffile refuses the Exif and GPS pointers).

Pure function on bytes: Pillow serialises the EXIF tags after the end of the file, then a new
IFD0 listing the file's own entries plus the added ones replaces the old one.
"""

from __future__ import annotations

import struct

from PIL import Image, TiffImagePlugin

from engine.io.metadata import DESCRIPTIVE_IFD0_TAGS, SUB_IFD_TAGS, with_exif_header
from engine.io.tiff_ifd import ENTRY_BYTES, read_ifd, read_ifd0


def attach_exif(tiff: bytes, exif: bytes) -> bytes:
    """`tiff` (classic, one image) carrying the EXIF of `exif` (APP1 or bare TIFF form).

    Kept: the descriptive IFD0 tags (description, make, model, orientation, software, date,
    artist, copyright) and the whole Exif and GPS sub-IFDs (capture times, exposure, lens,
    location...), re-serialised by Pillow. Lost: the thumbnail IFD, and maker notes whose
    internal offsets are absolute. Source tags replace the file's own (e.g. Software).
    """
    own = read_ifd0(tiff)
    if own is None:
        raise ValueError("not a classic TIFF stream")
    source = Image.Exif()
    source.load(with_exif_header(exif))
    added = TiffImagePlugin.ImageFileDirectory_v2(ifh=tiff[:8])
    for tag in DESCRIPTIVE_IFD0_TAGS:
        if tag in source:
            added[tag] = source[tag]
    for tag in SUB_IFD_TAGS:
        sub_ifd = source.get_ifd(tag)
        if sub_ifd:
            added[tag] = dict(sub_ifd)
    if not len(added):
        return tiff

    out = _word_aligned(tiff)
    block_offset = len(out)
    # Pillow is told where its block will sit, so the offsets it writes are absolute.
    out += added.tobytes(block_offset)
    block = read_ifd(out, block_offset, own.endian)
    if block is None:
        raise ValueError("Pillow wrote an EXIF block shorter than its own entry count")
    entries = {**_entry_bytes(tiff, own.entries), **_entry_bytes(out, block.entries)}

    out = _word_aligned(out)
    ifd0_offset = len(out)
    new_ifd0 = (
        struct.pack(own.endian + "H", len(entries))
        + b"".join(entries[tag] for tag in sorted(entries))
        + struct.pack(own.endian + "I", own.next_offset)
    )
    header = tiff[:4] + struct.pack(own.endian + "I", ifd0_offset)
    return header + out[8:] + new_ifd0


def _entry_bytes(tiff: bytes, positions: dict[int, int]) -> dict[int, bytes]:
    return {tag: tiff[position : position + ENTRY_BYTES] for tag, position in positions.items()}


def _word_aligned(data: bytes) -> bytes:
    # TIFF 6.0: an IFD starts on a word boundary.
    return data + b"\x00" * (len(data) % 2)
