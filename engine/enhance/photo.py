"""From stored pixels to enhanced pixels: bit depth, grey, alpha and the final resize.

Follows the reference Real-ESRGAN inference: the network runs at its native scale on RGB in
[0, 1]; grey images go through as three equal channels and come back as luma; alpha goes
through the network as a grey image or is resized with bicubic interpolation, as chosen; a
requested `outscale` other than the native scale is reached with a final Lanczos resize
(OpenCV's on the CPU, the same kernel in torch on a GPU).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import torch

from engine.enhance.resize import resize_lanczos4_banded
from engine.enhance.upscaler import Upscaler
from engine.errors import OptionError

AlphaMode = Literal["network", "bicubic"]
# Output rows resized per GPU call: bounds the device memory of the final resize.
RESIZE_BAND_ROWS = 1024


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
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels not in (1, 3, 4):
        raise OptionError(f"images with {channels} channels cannot be enhanced")

    planes = torch.from_numpy(np.ascontiguousarray(pixels))
    planes = planes[None] if channels == 1 else planes.permute(2, 0, 1)
    rgb = planes[:1].expand(3, -1, -1) if channels == 1 else planes[:3]
    result = upscaler.upscale(rgb, luma=channels == 1)
    if channels == 4:
        result = torch.cat([result, _upscale_alpha(planes[3], upscaler, alpha)])

    out = result.permute(1, 2, 0).numpy()
    out = out[:, :, 0] if channels == 1 else out
    if outscale is not None and outscale != upscaler.scale:
        out = _final_resize(out, output_size(height, width, outscale), upscaler.device)
    return np.ascontiguousarray(out)


def _upscale_alpha(alpha: torch.Tensor, upscaler: Upscaler, mode: AlphaMode) -> torch.Tensor:
    if mode == "network":
        return upscaler.upscale(alpha[None].expand(3, -1, -1), luma=True)
    if mode == "bicubic":
        h, w = alpha.shape
        s = upscaler.scale
        max_value = float(np.iinfo(alpha.numpy().dtype).max)
        plane = alpha.numpy().astype(np.float32) / max_value
        resized = cv2.resize(plane, (w * s, h * s), interpolation=cv2.INTER_CUBIC)
        quantised = np.round(np.clip(resized, 0.0, 1.0) * max_value).astype(alpha.numpy().dtype)
        return torch.from_numpy(quantised)[None]
    raise OptionError(f"unknown alpha mode {mode!r}: use network or bicubic")


def _final_resize(pixels: np.ndarray, size: tuple[int, int], device: torch.device) -> np.ndarray:
    out_h, out_w = size
    if device.type != "cuda":
        return cv2.resize(pixels, (out_w, out_h), interpolation=cv2.INTER_LANCZOS4)
    planes = torch.from_numpy(pixels if pixels.ndim == 3 else pixels[:, :, None]).permute(2, 0, 1)
    resized = resize_lanczos4_banded(
        planes, out_h, out_w, device=device, band_rows=RESIZE_BAND_ROWS
    ).permute(1, 2, 0)
    return resized.numpy() if pixels.ndim == 3 else resized[:, :, 0].numpy()
