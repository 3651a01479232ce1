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


def test_reflect_indices_match_torch_reflect_padding() -> None:
    from torch.nn import functional as F

    from engine.enhance.tiling import reflect_indices

    line = torch.arange(7.0)[None, None]
    for pad in (0, 1, 3, 6):
        expected = F.pad(line, (0, pad), mode="reflect")[0, 0].long().tolist()
        assert reflect_indices(7, pad) == expected
    assert reflect_indices(2, 5) == [0, 1, 1, 1, 1, 1, 1]  # too short to reflect: replicate


def test_choose_tile_px_fits_the_budget() -> None:
    from engine.enhance.tiling import MIN_TILE_PX, choose_tile_px

    assert choose_tile_px(100, 100, budget_bytes=10_000 * 8, bytes_per_px=8, tile_pad_px=10) == 0
    tile = choose_tile_px(4000, 3000, budget_bytes=2**30, bytes_per_px=1000, tile_pad_px=10)
    assert tile % 16 == 0 and (tile + 20) ** 2 * 1000 <= 2**30 < (tile + 36) ** 2 * 1000
    batched = choose_tile_px(
        4000, 3000, budget_bytes=2**30, bytes_per_px=1000, tile_pad_px=10, tile_batch=4
    )
    assert batched < tile and 4 * (batched + 20) ** 2 * 1000 <= 2**30
    assert (
        choose_tile_px(4000, 3000, budget_bytes=1, bytes_per_px=1000, tile_pad_px=10) == MIN_TILE_PX
    )


def test_integer_images_are_quantised_on_the_device_like_the_float_path(
    anime_weights: Path, faces_dir: Path
) -> None:
    network, spec = build_network(read_state_dict(anime_weights))
    image = _photo_tensor(faces_dir, 30, 41)
    as_uint8 = (image * 255).round().to(torch.uint8)
    upscaler = Upscaler(network, spec, device=CPU, dtype=torch.float32)
    from_float = upscaler.upscale(as_uint8.float() / 255)
    from_int = upscaler.upscale(as_uint8)
    assert from_int.dtype == torch.uint8
    assert torch.equal(from_int, (from_float * 255).round().to(torch.uint8))


class _RunsOutOfMemory(torch.nn.Module):
    """Wraps a network; inputs larger than `limit_px` pixels fail like a full GPU would."""

    def __init__(self, network: torch.nn.Module, limit_px: int) -> None:
        super().__init__()
        self.network = network
        self.limit_px = limit_px
        self.failures = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] * x.shape[-2] > self.limit_px:
            self.failures += 1
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return self.network(x)


def test_out_of_memory_halves_the_tile_and_loses_nothing(
    anime_weights: Path, faces_dir: Path
) -> None:
    from engine.errors import DeviceOutOfMemoryError

    network, spec = build_network(read_state_dict(anime_weights))
    image = _photo_tensor(faces_dir, 96, 128)
    whole = _upscale(network, spec, image, tile_px=0)
    flaky = _RunsOutOfMemory(network, limit_px=80 * 80)
    upscaler = Upscaler(
        flaky,
        spec,
        device=CPU,
        dtype=torch.float32,
        tiles=TileSettings(tile_px=0, tile_pad_px=spec.receptive_radius),
    )
    result = upscaler.upscale(image)
    # The whole image, then 64-px tiles (82 px with context) fail; 32-px tiles fit.
    assert flaky.failures == 2
    assert (result - whole).abs().max().item() < 1e-4
    failures = flaky.failures
    upscaler.upscale(image)  # the next image starts from the tile size that worked
    assert flaky.failures == failures

    hopeless = Upscaler(
        _RunsOutOfMemory(network, limit_px=1), spec, device=CPU, dtype=torch.float32
    )
    with pytest.raises(DeviceOutOfMemoryError, match="ran out of memory"):
        hopeless.upscale(image)


def test_automatic_tiles_follow_the_memory_budget(
    anime_weights: Path, faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    network, spec = build_network(read_state_dict(anime_weights))
    image = _photo_tensor(faces_dir, 120, 150)
    whole = _upscale(network, spec, image, tile_px=0)
    seen: list[int] = []
    original = Upscaler._upscale

    def spy(self: Upscaler, image: torch.Tensor, tile_px: int, luma: bool) -> torch.Tensor:
        seen.append(tile_px)
        return original(self, image, tile_px, luma)

    monkeypatch.setattr(Upscaler, "_upscale", spy)
    auto = Upscaler(
        network,
        spec,
        device=CPU,
        dtype=torch.float32,
        tiles=TileSettings(tile_px=None, tile_pad_px=spec.receptive_radius),
    )
    monkeypatch.setattr(
        auto, "_memory_budget", lambda: 100 * 100 * auto.device_bytes_per_input_pixel()
    )
    result = auto.upscale(image)
    assert seen == [64]  # sqrt(budget / bytes_per_px) = 100, minus 2 x 18 context, 16-aligned
    assert (result - whole).abs().max().item() < 1e-4


def test_next_batch_is_launched_before_the_previous_is_stitched(
    anime_weights: Path, faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overlap that keeps a GPU busy: the host stitches batch k while batch k+1 runs."""
    from engine.enhance import upscaler as module

    network, spec = build_network(read_state_dict(anime_weights))
    image = _photo_tensor(faces_dir, 64, 96)
    events: list[str] = []
    launch, stitch = Upscaler._launch, module._stitch

    def spy_launch(self: Upscaler, *args: object) -> object:
        events.append("launch")
        return launch(self, *args)

    def spy_stitch(*args: object) -> None:
        events.append("stitch")
        stitch(*args)

    monkeypatch.setattr(Upscaler, "_launch", spy_launch)
    monkeypatch.setattr(module, "_stitch", spy_stitch)
    tiled = _upscale(network, spec, image, tile_px=32, tile_pad_px=spec.receptive_radius)
    assert events == ["launch", "launch"] + ["stitch", "launch"] * 4 + ["stitch"] * 2
    monkeypatch.undo()
    whole = _upscale(network, spec, image, tile_px=0)
    assert (tiled - whole).abs().max().item() < 1e-4
