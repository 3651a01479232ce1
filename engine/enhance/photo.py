"""From stored pixels to enhanced pixels: bit depth, grey, alpha and the final resize.

Follows the reference Real-ESRGAN inference: the network runs at its native scale on RGB in
[0, 1]; grey images go through as three equal channels and come back as luma; alpha goes
through the network as a grey image or is resized with bicubic interpolation, as chosen; a
requested `outscale` other than the native scale is reached with a final Lanczos resize.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import torch

from engine.enhance.upscaler import Upscaler
from engine.errors import OptionError

AlphaMode = Literal["network", "bicubic"]

# ITU-R BT.601 luma, the weights of OpenCV's RGB->GRAY that the reference uses.
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)


def output_size(height: int, width: int, outscale: float) -> tuple[int, int]:
    """The (height, width) of a result at `outscale`, truncated as the reference does."""
    if outscale <= 0:
        raise OptionError(f"scale must be positive, got {outscale}")
    return max(1, int(height * outscale)), max(1, int(width * outscale))


@torch.inference_mode()
def enhance_pixels(
    pixels: np.ndarray,
    upscaler: Upscaler,
    *,
    outscale: float | None = None,
    alpha: AlphaMode = "network",
) -> np.ndarray:
    """Enhance an HxW, HxWx3 or HxWx4 uint8/uint16 RGB(A) array; same layout and dtype out."""
    if pixels.dtype not in (np.uint8, np.uint16):
        raise OptionError(f"only 8- and 16-bit images can be enhanced, not {pixels.dtype}")
    max_value = float(np.iinfo(pixels.dtype).max)
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels not in (1, 3, 4):
        raise OptionError(f"images with {channels} channels cannot be enhanced")

    planes = torch.from_numpy(np.ascontiguousarray(pixels)).float().div_(max_value)
    planes = planes[None] if channels == 1 else planes.permute(2, 0, 1)
    rgb = planes[:1].expand(3, -1, -1) if channels == 1 else planes[:3]

    result = upscaler.upscale(rgb.contiguous())
    if channels == 1:
        result = (result * _LUMA).sum(0, keepdim=True)
    if channels == 4:
        result = torch.cat([result, _upscale_alpha(planes[3], upscaler, alpha)])

    out = result.mul_(max_value).round_().permute(1, 2, 0).numpy().astype(pixels.dtype)
    out = out[:, :, 0] if channels == 1 else out
    if outscale is not None and outscale != upscaler.scale:
        out_h, out_w = output_size(height, width, outscale)
        out = cv2.resize(out, (out_w, out_h), interpolation=cv2.INTER_LANCZOS4)
    return out


def _upscale_alpha(alpha: torch.Tensor, upscaler: Upscaler, mode: AlphaMode) -> torch.Tensor:
    if mode == "network":
        grey = upscaler.upscale(alpha[None].expand(3, -1, -1).contiguous())
        return (grey * _LUMA).sum(0, keepdim=True)
    if mode == "bicubic":
        h, w = alpha.shape
        s = upscaler.scale
        resized = cv2.resize(alpha.numpy(), (w * s, h * s), interpolation=cv2.INTER_CUBIC)
        return torch.from_numpy(resized).clamp_(0.0, 1.0)[None]
    raise OptionError(f"unknown alpha mode {mode!r}: use network or bicubic")
