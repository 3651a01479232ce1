"""Turn the files and folders a user names into the list of images to process."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from engine.errors import ImageReadError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"})


def find_images(inputs: Sequence[Path]) -> list[Path]:
    """Files named in `inputs`, then the images found in the folders named, in input order.

    A file named explicitly is kept whatever its suffix, so that a wrong file is reported by
    the decoder rather than silently skipped. Folders are walked recursively in sorted order,
    keeping files with an image suffix (any case) and skipping hidden files and folders
    (".name"); symlinked folders are not followed, which rules out cycles. A path reached
    twice (same resolved file) is listed once. Raises ImageReadError for a missing input.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for given in inputs:
        if given.is_dir():
            candidates = _walk(given)
        elif given.exists():
            candidates = [given]
        else:
            raise ImageReadError(given, "no such file or directory")
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    return found


def _walk(folder: Path) -> list[Path]:
    images = []
    for directory, subdirectories, files in os.walk(folder, onerror=_raise_unreadable):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        images.extend(
            Path(directory, name)
            for name in sorted(files)
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
    return images


def _raise_unreadable(error: OSError) -> None:
    raise ImageReadError(error.filename, f"cannot list this folder ({error.strerror})")
