"""Opaque page cursors for `TaskQueue.list`: a position in (queued_at, sequence) order.

A position rather than an offset, so tasks submitted between two pages neither repeat nor
shift a page. Opaque (base64) so clients pass it back rather than build one; the sequence
breaks ties between tasks queued in the same microsecond.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from engine.errors import TaskCursorError

_VERSION = "1"


@dataclass(frozen=True, order=True)
class PagePosition:
    queued_at_us: int  # microseconds since the Unix epoch
    sequence: int  # submission order within this queue


def encode(position: PagePosition) -> str:
    text = f"{_VERSION}:{position.queued_at_us}:{position.sequence}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cursor: str) -> PagePosition:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, queued_at_us, sequence = (
            base64.urlsafe_b64decode(padded.encode()).decode().split(":")
        )
        position = PagePosition(int(queued_at_us), int(sequence))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise TaskCursorError(cursor) from exc
    # Only the exact text `encode` writes: base64 decoding forgives stray characters.
    if version != _VERSION or encode(position) != cursor:
        raise TaskCursorError(cursor)
    return position
