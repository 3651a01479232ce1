"""Pixels in, pixels out: sizes, bit depth, grey and alpha, with the real network."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from engine.enhance.load import build_network, read_state_dict
from engine.enhance.photo import enhance_pixels, output_size
from engine.enhance.upscaler import Upscaler


@pytest.fixture(scope="module")
def upscaler(anime_weights: Path) -> Upscaler:
    network, spec = build_network(read_state_dict(anime_weights))
    return Upscaler(network, spec, device=torch.device("cpu"), dtype=torch.float32)


@pytest.fixture(scope="module")
def rgb(faces_dir: Path) -> np.ndarray:
    with Image.open(faces_dir / "paul_allen" / "paul_allen.jpg") as im:
        return np.asarray(im.convert("RGB"))[200:236, 250:290].copy()  # 36 x 40


@pytest.mark.parametrize(
    ("outscale", "expected"),
    [(None, (144, 160)), (4, (144, 160)), (2, (72, 80)), (1.5, (54, 60)), (3.3, (118, 132))],
)
def test_output_sizes(
    upscaler: Upscaler, rgb: np.ndarray, outscale: float | None, expected: tuple[int, int]
) -> None:
    out = enhance_pixels(rgb, upscaler, outscale=outscale)
    assert out.shape == (*expected, 3) and out.dtype == np.uint8


def test_final_resize_is_lanczos_from_the_native_result(
    upscaler: Upscaler, rgb: np.ndarray
) -> None:
    native = enhance_pixels(rgb, upscaler)
    half = enhance_pixels(rgb, upscaler, outscale=2)
    np.testing.assert_array_equal(
        half, cv2.resize(native, (80, 72), interpolation=cv2.INTER_LANCZOS4)
    )


def test_sixteen_bit_keeps_its_precision(upscaler: Upscaler, rgb: np.ndarray) -> None:
    low_bits = np.random.default_rng(0).integers(0, 256, rgb.shape, dtype=np.uint16)
    deep = rgb.astype(np.uint16) * 256 + low_bits  # information in the low byte too
    out16 = enhance_pixels(deep, upscaler)
    out8 = enhance_pixels(rgb, upscaler)
    assert out16.dtype == np.uint16 and out16.shape == out8.shape
    assert out16.max() > 255
    assert len(np.unique(out16 % 257)) > 50  # not an 8-bit result scaled up
    # Same picture: agrees with the 8-bit result within quantisation.
    assert np.abs(out16 / 65535.0 - out8 / 255.0).mean() < 0.01


def test_grey_in_grey_out(upscaler: Upscaler, rgb: np.ndarray) -> None:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    out = enhance_pixels(grey, upscaler)
    assert out.shape == (144, 160)
    colour = enhance_pixels(np.repeat(grey[..., None], 3, axis=2), upscaler)
    np.testing.assert_allclose(out, cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY), atol=1)


def test_alpha_modes_are_honoured(upscaler: Upscaler, rgb: np.ndarray) -> None:
    alpha = np.zeros(rgb.shape[:2], np.uint8)
    alpha[8:28, 10:30] = 255
    rgba = np.dstack([rgb, alpha])
    by_network = enhance_pixels(rgba, upscaler, alpha="network")
    by_bicubic = enhance_pixels(rgba, upscaler, alpha="bicubic")
    assert by_network.shape == by_bicubic.shape == (144, 160, 4)
    np.testing.assert_array_equal(by_network[..., :3], by_bicubic[..., :3])
    reference = np.clip(cv2.resize(alpha / 255.0, (160, 144), interpolation=cv2.INTER_CUBIC), 0, 1)
    np.testing.assert_allclose(by_bicubic[..., 3], np.round(reference * 255), atol=1)
    assert np.abs(by_network[..., 3].astype(int) - by_bicubic[..., 3]).max() > 10
    # Either way, the opaque core stays opaque and the transparent border transparent.
    for out in (by_network, by_bicubic):
        assert out[60:80, 70:90, 3].min() > 240 and out[:10, :10, 3].max() < 15


def test_output_size_truncates_like_the_reference() -> None:
    assert output_size(101, 33, 1.5) == (151, 49)
