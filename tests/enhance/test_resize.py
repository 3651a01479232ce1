"""The torch Lanczos resize (used on GPUs) reproduces OpenCV's INTER_LANCZOS4."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from engine.enhance.resize import resize_lanczos4, resize_lanczos4_banded


@pytest.fixture(scope="module")
def photo(faces_dir: Path) -> np.ndarray:
    with Image.open(faces_dir / "kit_harington" / "john2.jpg") as im:
        return np.array(im.convert("RGB"))[:120, :170]


@pytest.mark.parametrize("size", [(60, 85), (240, 340), (97, 31), (120, 170), (301, 411)])
def test_matches_opencv(photo: np.ndarray, size: tuple[int, int]) -> None:
    out_h, out_w = size
    planes = torch.from_numpy(photo).permute(2, 0, 1)

    reference = cv2.resize(
        photo.astype(np.float32), (out_w, out_h), interpolation=cv2.INTER_LANCZOS4
    )
    ours = resize_lanczos4(planes.float(), out_h, out_w).permute(1, 2, 0).numpy()
    assert np.abs(ours - reference).max() < 5e-3

    reference8 = cv2.resize(photo, (out_w, out_h), interpolation=cv2.INTER_LANCZOS4)
    banded = resize_lanczos4_banded(planes, out_h, out_w, device=torch.device("cpu"), band_rows=17)
    diff = np.abs(banded.permute(1, 2, 0).numpy().astype(int) - reference8)
    assert banded.dtype == torch.uint8 and diff.max() <= 1 and diff.mean() < 0.5


def test_bands_do_not_change_the_result(photo: np.ndarray) -> None:
    planes = torch.from_numpy(photo).permute(2, 0, 1).to(torch.int32).mul(257).to(torch.uint16)
    cpu = torch.device("cpu")
    whole = resize_lanczos4_banded(planes, 250, 350, device=cpu, band_rows=10_000)
    for band_rows in (1, 13, 64):
        banded = resize_lanczos4_banded(planes, 250, 350, device=cpu, band_rows=band_rows)
        assert torch.equal(banded, whole)
    assert whole.dtype == torch.uint16 and int(whole.int().max()) > 255
