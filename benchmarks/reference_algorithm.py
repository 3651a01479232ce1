"""The reference Real-ESRGAN inference algorithm, re-implemented as the benchmark's baseline.

It follows what `realesrgan.RealESRGANer.enhance` does, step for step, so AMP's speed can be
compared on the same model and inputs where the `realesrgan` package cannot be installed:
the whole image is converted to float and copied to the device, optionally reflect-padded
(`pre_pad`) and mod-padded, processed in one pass or one tile at a time (batch 1), assembled
as a float image on the device, copied back and converted to uint8 on the CPU with numpy,
then resized with OpenCV's Lanczos when `outscale` differs from the native scale.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class ReferenceEnhancer:
    def __init__(
        self,
        network: nn.Module,
        scale: int,
        *,
        device: torch.device,
        half: bool,
        tile: int = 0,
        tile_pad: int = 10,
        pre_pad: int = 10,
    ) -> None:
        self.scale = scale
        self.device = device
        self.half = half
        self.tile = tile
        self.tile_pad = tile_pad
        self.pre_pad = pre_pad
        self.mod_scale = {2: 2, 1: 4}.get(scale)
        self.network = network.eval().to(device)
        if half:
            self.network = self.network.half()

    @torch.no_grad()
    def enhance(self, rgb_uint8: np.ndarray, outscale: float | None = None) -> np.ndarray:
        h_input, w_input = rgb_uint8.shape[:2]
        img = rgb_uint8.astype(np.float32) / 255.0
        x = torch.from_numpy(np.transpose(img, (2, 0, 1))).float().unsqueeze(0).to(self.device)
        if self.half:
            x = x.half()
        if self.pre_pad:
            x = F.pad(x, (0, self.pre_pad, 0, self.pre_pad), "reflect")
        mod_h = mod_w = 0
        if self.mod_scale:
            _, _, h, w = x.shape
            mod_h = (self.mod_scale - h % self.mod_scale) % self.mod_scale
            mod_w = (self.mod_scale - w % self.mod_scale) % self.mod_scale
            x = F.pad(x, (0, mod_w, 0, mod_h), "reflect")
        out = self._tiles(x) if self.tile > 0 else self.network(x)
        _, _, h, w = out.shape
        if self.mod_scale:
            out = out[:, :, : h - mod_h * self.scale, : w - mod_w * self.scale]
        if self.pre_pad:
            _, _, h, w = out.shape
            out = out[:, :, : h - self.pre_pad * self.scale, : w - self.pre_pad * self.scale]
        result = out.data.squeeze().float().cpu().clamp_(0, 1).numpy()
        result = (np.transpose(result, (1, 2, 0)) * 255.0).round().astype(np.uint8)
        if outscale is not None and outscale != float(self.scale):
            size = (int(w_input * outscale), int(h_input * outscale))
            result = cv2.resize(result, size, interpolation=cv2.INTER_LANCZOS4)
        return result

    def _tiles(self, x: torch.Tensor) -> torch.Tensor:
        batch, channel, height, width = x.shape
        s, t, p = self.scale, self.tile, self.tile_pad
        output = x.new_zeros((batch, channel, height * s, width * s))
        for ty in range(math.ceil(height / t)):
            for tx in range(math.ceil(width / t)):
                x0, y0 = tx * t, ty * t
                x1, y1 = min(x0 + t, width), min(y0 + t, height)
                px0, py0 = max(x0 - p, 0), max(y0 - p, 0)
                px1, py1 = min(x1 + p, width), min(y1 + p, height)
                tile_out = self.network(x[:, :, py0:py1, px0:px1])
                oy, ox = (y0 - py0) * s, (x0 - px0) * s
                output[:, :, y0 * s : y1 * s, x0 * s : x1 * s] = tile_out[
                    :, :, oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s
                ]
        return output
