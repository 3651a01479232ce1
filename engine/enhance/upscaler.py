"""Run a super-resolution network over an image of any size, tile by tile.

The image stays in host memory as integers; only the tiles of one batch live on the device.
Integer-to-float conversion, clamping, the grey (luma) reduction and quantisation back to
8/16-bit all happen on the device, so each tile crosses the bus as compact integers both ways.
On CUDA the next batch is queued before the host stitches the previous one, so host work
overlaps device work.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import psutil
import torch
from torch import nn

from engine.enhance.memory import META, PROBE_TILE_PX, peak_bytes
from engine.enhance.spec import NetworkSpec
from engine.enhance.tiling import (
    MIN_TILE_PX,
    Tile,
    choose_tile_px,
    plan_tiles,
    reflect_indices,
    round_up,
)
from engine.errors import DeviceOutOfMemoryError, OptionError

log = logging.getLogger(__name__)

# ITU-R BT.601 luma, the weights of OpenCV's RGB->GRAY that the reference uses for grey images.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
# Shares of free memory that automatic tiles may plan for: the GPU's allocator keeps its own
# cache and fragments; on the host, decode and encode buffers live beside the activations.
GPU_MEMORY_SHARE = 0.6
HOST_MEMORY_SHARE = 0.25
# torch.compile modes; "reduce-overhead" replays each tile shape as a CUDA graph.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class TileSettings:
    """`tile_px` None sizes tiles from free memory, 0 runs each image whole. `tile_pad_px`
    context pixels around each tile hide the seams; `pre_pad_px` reflect-pads the image's
    bottom/right edges before the network (the reference's `pre_pad`); `tile_batch` tiles of
    equal shape share one forward pass."""

    tile_px: int | None = 0
    tile_pad_px: int = 10
    pre_pad_px: int = 0
    tile_batch: int = 1

    def __post_init__(self) -> None:
        if self.tile_px is not None and self.tile_px < 0:
            raise OptionError(f"tile size must be >= 0 (0 = whole image), got {self.tile_px}")
        if min(self.tile_pad_px, self.pre_pad_px) < 0 or self.tile_batch < 1:
            raise OptionError("tile padding and pre-padding must be >= 0, tile batch >= 1")


class Upscaler:
    """A loaded network on its device, ready to upscale images.

    The Upscaler owns the network: it is moved to the device and number format in place.
    With `compile_mode` the network is compiled for each tile shape it meets (static shapes:
    measured faster than one dynamic-shape graph); past torch's recompile limit, new shapes run
    eagerly, and a compiler failure falls back to eager execution for good.
    """

    def __init__(
        self,
        network: nn.Module,
        spec: NetworkSpec,
        *,
        device: torch.device,
        dtype: torch.dtype,
        tiles: TileSettings = TileSettings(),
        compile_mode: str | None = None,
    ) -> None:
        if compile_mode is not None and compile_mode not in COMPILE_MODES:
            raise OptionError(
                f"unknown compile mode {compile_mode!r}: use one of {', '.join(COMPILE_MODES)}"
            )
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.tiles = tiles
        self.network = network.to(
            device=device, dtype=dtype, memory_format=torch.channels_last
        ).eval()
        self.compile_mode = compile_mode
        self._run = (
            self.network
            if compile_mode is None
            else torch.compile(self.network, mode=compile_mode, dynamic=False)
        )
        # After an out-of-memory error, later images start from the tile size that worked.
        self._tile_cap: int | None = None
        self._bytes_per_px: int | None = None

    @property
    def scale(self) -> int:
        return self.spec.scale

    @torch.inference_mode()
    def upscale(self, image: torch.Tensor, *, luma: bool = False) -> torch.Tensor:
        """(C, H, W) host tensor -> (C, H*scale, W*scale) host tensor, or (1, ...) with `luma`.

        uint8/uint16 in gives the same type out (rounded); float in [0, 1] gives float32 out,
        clamped to [0, 1].
        """
        if image.ndim != 3 or image.shape[0] != self.spec.num_in_ch:
            raise ValueError(f"expected ({self.spec.num_in_ch}, H, W), got {tuple(image.shape)}")
        tile_px = self.tile_px_for(image.shape[1], image.shape[2])
        while True:
            try:
                return self._upscale(image, tile_px, luma)
            except (torch.OutOfMemoryError, MemoryError) as exc:
                tile_px = self._smaller_tile(tile_px, image.shape[1], image.shape[2], exc)

    def tile_px_for(self, height: int, width: int, *, budget_bytes: int | None = None) -> int:
        """The tile a `height` x `width` image starts with (0: whole). Automatic tiles plan for
        `budget_bytes`, by default a share of the device's free memory now."""
        tile_px = self.tiles.tile_px
        if tile_px is None:
            tile_px = choose_tile_px(
                height + self.tiles.pre_pad_px,
                width + self.tiles.pre_pad_px,
                budget_bytes=self._memory_budget() if budget_bytes is None else budget_bytes,
                bytes_per_px=self.device_bytes_per_input_pixel(),
                tile_pad_px=self.tiles.tile_pad_px,
                tile_batch=self.tiles.tile_batch,
            )
        if self._tile_cap is not None and (tile_px == 0 or tile_px > self._tile_cap):
            return self._tile_cap
        return tile_px

    def _smaller_tile(self, tile_px: int, height: int, width: int, exc: BaseException) -> int:
        smaller = (max(height, width) if tile_px == 0 else tile_px) // 2
        if smaller < MIN_TILE_PX:
            raise DeviceOutOfMemoryError(
                f"{self.device} ran out of memory even on {tile_px}-pixel tiles; "
                "free memory on the device or use a smaller model"
            ) from exc
        log.warning(
            "out of memory on %s with tile %s; retrying with %d",
            self.device,
            tile_px or "whole image",
            smaller,
        )
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self._tile_cap = smaller
        return smaller

    def device_bytes_per_input_pixel(self) -> int:
        """Peak device bytes of one tile's launch per input pixel, measured once on the meta
        device with this network's shape and number format: the model's cost that tile sizes
        are planned with."""
        if self._bytes_per_px is None:
            with torch.device(META):
                network = self.spec.build()
            probe = Upscaler(network, self.spec, device=META, dtype=self.dtype)
            side = PROBE_TILE_PX
            # 16-bit input and the grey output path are the costliest variants of a launch.
            tile = torch.zeros((1, self.spec.num_in_ch, side, side), dtype=torch.uint16)
            peak = max(
                peak_bytes(lambda luma=luma: probe._launch(tile, torch.uint16, luma))
                for luma in (False, True)
            )
            self._bytes_per_px = -(-peak // (side * side))
        return self._bytes_per_px

    def _memory_budget(self) -> int:
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return int(free * GPU_MEMORY_SHARE)
        return int(psutil.virtual_memory().available * HOST_MEMORY_SHARE)

    def plan(self, height: int, width: int, tile_px: int) -> tuple[int, int, list[Tile]]:
        """The padded (height, width) the network sees and the tiles that cover it."""
        multiple = self.spec.size_multiple
        padded_h = round_up(height + self.tiles.pre_pad_px, multiple)
        padded_w = round_up(width + self.tiles.pre_pad_px, multiple)
        # Tile edges must fall on the pixel-unshuffle grid of RRDBNet x2/x1.
        tiles = plan_tiles(
            padded_h,
            padded_w,
            tile_px=round_up(tile_px, multiple) if tile_px else 0,
            tile_pad_px=round_up(self.tiles.tile_pad_px, multiple),
            scale=self.scale,
        )
        return padded_h, padded_w, tiles

    def _upscale(self, image: torch.Tensor, tile_px: int, luma: bool) -> torch.Tensor:
        _, height, width = image.shape
        padded_h, padded_w, plan = self.plan(height, width, tile_px)
        padded = _pad_bottom_right(image, padded_h, padded_w)
        out_dtype = torch.float32 if image.is_floating_point() else image.dtype
        channels = 1 if luma else self.spec.num_out_ch
        s = self.scale
        out = torch.empty((channels, padded_h * s, padded_w * s), dtype=out_dtype)
        # One batch runs on the device while the host stitches the one before it: on CUDA the
        # launch returns at once, so the GPU never waits for the host between batches.
        in_flight: tuple[list[Tile], _Pending] | None = None
        for batch in _batches_of_equal_shape(plan, self.tiles.tile_batch):
            crops = torch.stack(
                [padded[:, t.read.y0 : t.read.y1, t.read.x0 : t.read.x1] for t in batch]
            )
            launched = (batch, self._launch(crops, out_dtype, luma))
            if in_flight is not None:
                _stitch(out, *in_flight)
            in_flight = launched
        if in_flight is not None:
            _stitch(out, *in_flight)
        return out[:, : height * s, : width * s]

    def _launch(self, batch: torch.Tensor, out_dtype: torch.dtype, luma: bool) -> _Pending:
        """Queue one batch: host to device, the network, device-side quantisation, and the copy
        back; on CUDA all of it is asynchronous and `_Pending.result` waits for it."""
        max_value = 1.0 if batch.is_floating_point() else float(torch.iinfo(batch.dtype).max)
        on_cuda = self.device.type == "cuda"
        if on_cuda:
            batch = batch.pin_memory()  # only page-locked memory copies asynchronously
        x = batch.to(self.device, non_blocking=True).float().div_(max_value).to(self.dtype)
        y = self._forward(x.contiguous(memory_format=torch.channels_last))
        y = y.float().clamp_(0.0, 1.0)
        if luma:
            weights = torch.tensor(LUMA_WEIGHTS, device=y.device).view(1, 3, 1, 1)
            y = (y * weights).sum(dim=1, keepdim=True)
        if out_dtype != torch.float32:
            # Round on the device; the integer result is a quarter (uint8) of the float's bytes.
            y = y.mul_(max_value).round_().to(out_dtype)
        if not on_cuda:
            return _Pending(y)
        host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
        host.copy_(y, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return _Pending(host, done)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self._run(x)
        except torch._dynamo.exc.TorchDynamoException as exc:
            if self._run is self.network:
                raise
            # A missing C++ compiler or an unsupported GPU must not cost the batch.
            reason = str(exc).strip().splitlines()[0]
            log.warning("torch.compile failed (%s); running the network eagerly", reason)
            self._run = self.network
            return self._run(x)


@dataclass(frozen=True)
class _Pending:
    """A batch's result in host memory, valid once `done` (a CUDA event, if any) has fired."""

    host: torch.Tensor
    done: torch.cuda.Event | None = None

    def result(self) -> torch.Tensor:
        if self.done is not None:
            self.done.synchronize()
        return self.host


def _stitch(out: torch.Tensor, tiles: list[Tile], pending: _Pending) -> None:
    """Copy each tile's kept core into its place in the upscaled image."""
    for tile, tile_out in zip(tiles, pending.result(), strict=True):
        k, w = tile.keep, tile.write
        out[:, w.y0 : w.y1, w.x0 : w.x1] = tile_out[:, k.y0 : k.y1, k.x0 : k.x1]


def _batches_of_equal_shape(plan: list[Tile], size: int) -> list[list[Tile]]:
    """Group tiles whose reads have the same shape so they can share one forward pass."""
    groups: dict[tuple[int, int], list[Tile]] = defaultdict(list)
    for tile in plan:
        groups[(tile.read.height, tile.read.width)].append(tile)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


def _pad_bottom_right(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Reflect-pad the bottom and right edges to `height` x `width` by indexing, which works
    for integer images too (torch's reflect padding is float-only)."""
    _, h, w = image.shape
    if (h, w) == (height, width):
        return image
    rows = torch.tensor(reflect_indices(h, height - h))
    cols = torch.tensor(reflect_indices(w, width - w))
    return image[:, rows][:, :, cols]
