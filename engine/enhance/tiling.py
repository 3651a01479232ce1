"""Where each tile of an image is read and written: pure integer arithmetic.

A tile reads its core region plus `tile_pad` context pixels on every side that lies inside
the image, runs the network, and keeps only the upscaled core. With `tile_pad` at least the
network's receptive radius the kept pixels equal those of an untiled run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """A half-open pixel rectangle [y0, y1) x [x0, x1)."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    def scaled(self, factor: int) -> Box:
        return Box(self.y0 * factor, self.y1 * factor, self.x0 * factor, self.x1 * factor)


@dataclass(frozen=True)
class Tile:
    read: Box  # input pixels fed to the network (core plus context)
    keep: Box  # output pixels of the network's result that belong to the core
    write: Box  # where the kept pixels go in the upscaled image


def plan_tiles(
    height: int, width: int, *, tile_px: int, tile_pad_px: int, scale: int
) -> list[Tile]:
    """Cover a `height` x `width` input with tiles of at most `tile_px` core pixels a side.

    `tile_px` 0 means one tile: the whole image, no context needed.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image {height}x{width}")
    if tile_px < 0 or tile_pad_px < 0:
        raise ValueError("tile size and padding must be non-negative")
    if tile_px == 0:
        whole = Box(0, height, 0, width)
        return [Tile(whole, whole.scaled(scale), whole.scaled(scale))]
    tiles = []
    for ty in range(math.ceil(height / tile_px)):
        for tx in range(math.ceil(width / tile_px)):
            core = Box(
                ty * tile_px,
                min((ty + 1) * tile_px, height),
                tx * tile_px,
                min((tx + 1) * tile_px, width),
            )
            read = Box(
                max(core.y0 - tile_pad_px, 0),
                min(core.y1 + tile_pad_px, height),
                max(core.x0 - tile_pad_px, 0),
                min(core.x1 + tile_pad_px, width),
            )
            keep = Box(
                core.y0 - read.y0,
                core.y0 - read.y0 + core.height,
                core.x0 - read.x0,
                core.x0 - read.x0 + core.width,
            ).scaled(scale)
            tiles.append(Tile(read, keep, core.scaled(scale)))
    return tiles


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


MIN_TILE_PX = 32


def choose_tile_px(
    height: int,
    width: int,
    *,
    budget_bytes: int,
    bytes_per_px: int,
    tile_pad_px: int,
    tile_batch: int = 1,
    multiple: int = 16,
) -> int:
    """The largest tile whose batch fits `budget_bytes`; 0 (whole image) when the image fits.

    Tiles are square, `multiple`-aligned, and at least MIN_TILE_PX: below that the context
    padding would cost more than the tile itself.
    """
    if height * width * bytes_per_px <= budget_bytes:
        return 0
    side_with_pad = math.isqrt(max(budget_bytes // (bytes_per_px * tile_batch), 0))
    side = (side_with_pad - 2 * tile_pad_px) // multiple * multiple
    return max(side, MIN_TILE_PX)


def reflect_indices(size: int, pad: int) -> list[int]:
    """Source index of each of `size + pad` positions when padding one end by reflection
    (`abc` -> `abcba`), or by replication where the pad is too long to reflect."""
    if pad >= size:
        return [min(i, size - 1) for i in range(size + pad)]
    return [i if i < size else 2 * (size - 1) - i for i in range(size + pad)]
