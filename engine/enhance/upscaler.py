"""Run a super-resolution network over an image of any size, tile by tile.

The image stays in host memory; only the tiles of one batch are on the device at a time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from engine.enhance.spec import NetworkSpec
from engine.enhance.tiling import Tile, plan_tiles, round_up
from engine.errors import DeviceOutOfMemoryError, OptionError


@dataclass(frozen=True)
class TileSettings:
    """`tile_px` 0 runs the whole image at once. `tile_pad_px` context pixels around each tile
    hide the seams; `pre_pad_px` reflect-pads the image's bottom/right edges before the network
    (the reference's `pre_pad`) to soften border artefacts."""

    tile_px: int = 0
    tile_pad_px: int = 10
    pre_pad_px: int = 0
    tile_batch: int = 1

    def __post_init__(self) -> None:
        if min(self.tile_px, self.tile_pad_px, self.pre_pad_px) < 0 or self.tile_batch < 1:
            raise OptionError("tile, tile padding and pre-padding must be >= 0, tile batch >= 1")


class Upscaler:
    """A loaded network on its device, ready to upscale float images in [0, 1].

    The Upscaler owns the network: it is moved to the device and number format in place.
    """

    def __init__(
        self,
        network: nn.Module,
        spec: NetworkSpec,
        *,
        device: torch.device,
        dtype: torch.dtype,
        tiles: TileSettings = TileSettings(),
    ) -> None:
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.tiles = tiles
        self.network = network.to(
            device=device, dtype=dtype, memory_format=torch.channels_last
        ).eval()

    @property
    def scale(self) -> int:
        return self.spec.scale

    @torch.inference_mode()
    def upscale(self, image: torch.Tensor) -> torch.Tensor:
        """(C, H, W) float32 in [0, 1] on the host -> (C, H*scale, W*scale) float32 in [0, 1]."""
        if image.ndim != 3 or image.shape[0] != self.spec.num_in_ch:
            raise ValueError(f"expected ({self.spec.num_in_ch}, H, W), got {tuple(image.shape)}")
        _, height, width = image.shape
        multiple = self.spec.size_multiple
        padded_h = round_up(height + self.tiles.pre_pad_px, multiple)
        padded_w = round_up(width + self.tiles.pre_pad_px, multiple)
        padded = _pad_bottom_right(image, padded_h - height, padded_w - width)

        # Tile edges must fall on the pixel-unshuffle grid of RRDBNet x2/x1.
        tile_px = round_up(self.tiles.tile_px, multiple) if self.tiles.tile_px else 0
        plan = plan_tiles(
            padded_h,
            padded_w,
            tile_px=tile_px,
            tile_pad_px=round_up(self.tiles.tile_pad_px, multiple),
            scale=self.scale,
        )
        out = torch.empty((self.spec.num_out_ch, padded_h * self.scale, padded_w * self.scale))
        for batch in _batches_of_equal_shape(plan, self.tiles.tile_batch):
            crops = torch.stack(
                [padded[:, t.read.y0 : t.read.y1, t.read.x0 : t.read.x1] for t in batch]
            )
            result = self._forward(crops)
            for tile, tile_out in zip(batch, result, strict=True):
                k, w = tile.keep, tile.write
                out[:, w.y0 : w.y1, w.x0 : w.x1] = tile_out[:, k.y0 : k.y1, k.x0 : k.x1]
        return out[:, : height * self.scale, : width * self.scale].clamp_(0.0, 1.0)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, non_blocking=True).to(self.dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        try:
            y = self.network(x)
        except torch.OutOfMemoryError as exc:
            raise DeviceOutOfMemoryError(
                f"{self.device} ran out of memory on a {tuple(x.shape[-2:])} tile; "
                "use a smaller --tile"
            ) from exc
        return y.float().cpu()


def _batches_of_equal_shape(plan: list[Tile], size: int) -> list[list[Tile]]:
    """Group tiles whose reads have the same shape so they can share one forward pass."""
    groups: dict[tuple[int, int], list[Tile]] = defaultdict(list)
    for tile in plan:
        groups[(tile.read.height, tile.read.width)].append(tile)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


def _pad_bottom_right(image: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    if pad_h == 0 and pad_w == 0:
        return image
    # Reflection needs the pad to be smaller than the side; tiny images fall back to replication.
    mode = "reflect" if pad_h < image.shape[-2] and pad_w < image.shape[-1] else "replicate"
    return F.pad(image[None], (0, pad_w, 0, pad_h), mode=mode)[0]
