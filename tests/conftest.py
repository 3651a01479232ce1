"""Fixtures shared by every test package: the real weights and photos in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AMP_SHARED_DIR", REPO.parent / "shared")).resolve()


def shared_file(relative: str) -> Path:
    """A file from ../shared; its absence is a broken checkout, never a reason to skip."""
    path = SHARED / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: tests need the shared weights and photos (set AMP_SHARED_DIR)"
        )
    return path


@pytest.fixture(scope="session")
def anime_weights() -> Path:
    """Real realesr-animevideov3 weights (SRVGGNetCompact x4, 16 convs), saved from CUDA tensors."""
    return shared_file("models/unofficial/realesr-animevideov3.third-party-copy.pth")


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return shared_file("faces/SOURCES.md").parent
