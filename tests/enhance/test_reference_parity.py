"""AMP's engine and an independent re-implementation of the reference algorithm (the
benchmark's baseline) give the same pixels on the same model: speed is compared like for like."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.reference_algorithm import ReferenceEnhancer
from engine.enhance.load import build_network, read_state_dict
from engine.enhance.photo import enhance_pixels
from engine.enhance.spec import NetworkSpec
from engine.enhance.upscaler import TileSettings, Upscaler

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def crop(faces_dir: Path) -> np.ndarray:
    with Image.open(faces_dir / "guido_van_rossum" / "guido_van_rossum3.jpg") as im:
        return np.array(im.convert("RGB"))[200:261, 300:347]


@pytest.mark.parametrize(("tile", "outscale"), [(0, None), (24, 2.5)])
def test_engine_matches_reference_algorithm_with_real_weights(
    anime_weights: Path, crop: np.ndarray, tile: int, outscale: float | None
) -> None:
    network, spec = build_network(read_state_dict(anime_weights))
    reference = ReferenceEnhancer(
        copy.deepcopy(network),
        spec.scale,
        device=CPU,
        half=False,
        tile=tile,
        tile_pad=spec.receptive_radius,
        pre_pad=10,
    )
    ours = Upscaler(
        network,
        spec,
        device=CPU,
        dtype=torch.float32,
        tiles=TileSettings(tile, spec.receptive_radius, pre_pad_px=10),
    )
    expected = reference.enhance(crop, outscale=outscale)
    actual = enhance_pixels(crop, ours, outscale=outscale)
    assert actual.shape == expected.shape
    assert np.abs(actual.astype(int) - expected).max() <= 1  # float summation order only
    assert (actual != expected).mean() < 0.001


def test_rrdbnet_x2_mod_padding_matches(crop: np.ndarray) -> None:
    torch.manual_seed(0)
    spec = NetworkSpec("RRDBNet", 2, num_feat=8, num_block=1, num_grow_ch=4)
    network = spec.build()
    reference = ReferenceEnhancer(copy.deepcopy(network), 2, device=CPU, half=False, pre_pad=3)
    ours = Upscaler(network, spec, device=CPU, dtype=torch.float32, tiles=TileSettings(0, 10, 3))
    expected = reference.enhance(crop)
    actual = enhance_pixels(crop, ours)
    assert actual.shape == expected.shape == (122, 94, 3)
    assert np.abs(actual.astype(int) - expected).max() <= 1
