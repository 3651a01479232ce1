"""Tiles: the plan covers the output once, and tiled inference equals untiled inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.enhance.load import build_network, read_state_dict
from engine.enhance.spec import NetworkSpec
from engine.enhance.tiling import plan_tiles
from engine.enhance.upscaler import TileSettings, Upscaler

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("height", "width", "tile", "pad", "scale"),
    [
        (37, 53, 16, 5, 4),
        (64, 64, 32, 0, 2),
        (10, 7, 100, 3, 1),
        (33, 1, 8, 2, 3),
        (20, 30, 0, 4, 4),
    ],
)
def test_plan_writes_every_output_pixel_exactly_once(
    height: int, width: int, tile: int, pad: int, scale: int
) -> None:
    hits = np.zeros((height * scale, width * scale), dtype=np.int32)
    for t in plan_tiles(height, width, tile_px=tile, tile_pad_px=pad, scale=scale):
        assert 0 <= t.read.y0 < t.read.y1 <= height and 0 <= t.read.x0 < t.read.x1 <= width
        assert t.keep.height == t.write.height and t.keep.width == t.write.width
        # The kept region lies inside the network's output for this read.
        assert t.keep.y1 <= t.read.height * scale and t.keep.x1 <= t.read.width * scale
        # The context reaches `pad` pixels beyond the core wherever the image allows.
        core_y0 = t.write.y0 // scale
        assert t.read.y0 == max(core_y0 - pad, 0)
        hits[t.write.y0 : t.write.y1, t.write.x0 : t.write.x1] += 1
    assert (hits == 1).all()


def _photo_tensor(faces_dir: Path, height: int, width: int) -> torch.Tensor:
    with Image.open(faces_dir / "kit_harington" / "john2.jpg") as im:
        crop = np.asarray(im.convert("RGB"))[100 : 100 + height, 200 : 200 + width]
    return torch.from_numpy(crop.copy()).permute(2, 0, 1).float() / 255


def _upscale(
    network: torch.nn.Module, spec: NetworkSpec, image: torch.Tensor, **tiles: int
) -> torch.Tensor:
    return Upscaler(
        network, spec, device=CPU, dtype=torch.float32, tiles=TileSettings(**tiles)
    ).upscale(image)


def test_tiled_equals_untiled_with_real_weights(anime_weights: Path, faces_dir: Path) -> None:
    network, spec = build_network(read_state_dict(anime_weights))
    image = _photo_tensor(faces_dir, 75, 98)  # odd sizes: edge tiles are smaller
    whole = _upscale(network, spec, image, tile_px=0)
    radius = spec.receptive_radius
    for tile_batch in (1, 3):
        tiled = _upscale(
            network, spec, image, tile_px=32, tile_pad_px=radius, tile_batch=tile_batch
        )
        assert (tiled - whole).abs().max().item() < 1e-4
    # The equality is earned by the padding: without context the seams show.
    seamed = _upscale(network, spec, image, tile_px=32, tile_pad_px=0)
    assert (seamed - whole).abs().max().item() > 1e-2


@pytest.mark.parametrize("scale", [2, 1])
def test_tiled_equals_untiled_for_pixel_unshuffled_rrdbnet(scale: int, faces_dir: Path) -> None:
    torch.manual_seed(scale)
    spec = NetworkSpec("RRDBNet", scale, num_feat=8, num_block=1, num_grow_ch=4)
    network = spec.build().eval()
    image = _photo_tensor(faces_dir, 45, 71)  # not multiples of the unshuffle factor
    whole = _upscale(network, spec, image, tile_px=0)
    tiled = _upscale(network, spec, image, tile_px=22, tile_pad_px=spec.receptive_radius)
    assert whole.shape == (3, 45 * scale, 71 * scale)
    assert (tiled - whole).abs().max().item() < 1e-4


def test_pre_pad_changes_only_border_handling(anime_weights: Path, faces_dir: Path) -> None:
    network, spec = build_network(read_state_dict(anime_weights))
    image = _photo_tensor(faces_dir, 40, 40)
    plain = _upscale(network, spec, image, tile_px=0)
    padded = _upscale(network, spec, image, tile_px=0, pre_pad_px=10)
    assert padded.shape == plain.shape
    inner = slice(0, (40 - spec.receptive_radius) * 4)
    assert torch.allclose(padded[:, inner, inner], plain[:, inner, inner], atol=1e-5)
    assert (padded - plain).abs().max() > 1e-3
