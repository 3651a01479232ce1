"""Splice metadata chunks into an encoded PNG. Pure functions on bytes.

OpenCV writes the 16-bit RGB PNGs that Pillow cannot hold but no EXIF or ICC profile, so the
encoder adds them here as eXIf and iCCP chunks (PNG 1.2 and its Extensions 1.5 for eXIf).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from engine.io.metadata import without_exif_header

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR_END = len(PNG_SIGNATURE) + 4 + 4 + 13 + 4  # length, type, 13-byte payload, CRC


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One chunk: big-endian length, 4-letter type, payload, CRC-32 of type and payload."""
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def iccp_chunk(profile: bytes, name: bytes = b"ICC Profile") -> bytes:
    """iCCP: profile name, NUL, compression method 0 (zlib), the compressed profile."""
    return png_chunk(b"iCCP", name + b"\x00\x00" + zlib.compress(profile))


def exif_chunk(exif: bytes) -> bytes:
    """eXIf holds the bare TIFF structure, without the b"Exif\\0\\0" of the JPEG form."""
    return png_chunk(b"eXIf", without_exif_header(exif))


def insert_chunks(png: bytes, chunks: Sequence[bytes]) -> bytes:
    """`png` with `chunks` placed right after IHDR, replacing chunks of the same types.

    Right after IHDR satisfies every ordering rule at once: iCCP must precede PLTE and IDAT,
    eXIf must precede IDAT. An added iCCP also drops sRGB, which the spec forbids beside it.
    """
    if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG stream starting with IHDR")
    replaced = {chunk[4:8] for chunk in chunks}
    if b"iCCP" in replaced:
        replaced.add(b"sRGB")
    kept = []
    position = _IHDR_END
    while position < len(png):
        (length,) = struct.unpack_from(">I", png, position)
        end = position + 12 + length
        if png[position + 4 : position + 8] not in replaced:
            kept.append(png[position:end])
        position = end
    return png[:_IHDR_END] + b"".join(chunks) + b"".join(kept)
