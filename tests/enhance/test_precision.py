"""Half-precision inference agrees with fp32 (PSNR over 45 dB on a real photo crop)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.device import resolve_device, resolve_dtype
from engine.enhance.load import build_network, read_state_dict
from engine.enhance.upscaler import Upscaler
from engine.errors import DeviceError, OptionError


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_matches_fp32(
    dtype: torch.dtype, anime_weights: Path, faces_dir: Path
) -> None:
    network, spec = build_network(read_state_dict(anime_weights))
    with Image.open(faces_dir / "barack_obama" / "obama.jpg") as im:
        crop = np.asarray(im.convert("RGB"))[300:364, 400:464].copy()
    image = torch.from_numpy(crop).permute(2, 0, 1).float() / 255
    cpu = torch.device("cpu")
    reference = Upscaler(copy.deepcopy(network), spec, device=cpu, dtype=torch.float32).upscale(
        image
    )
    result = Upscaler(network, spec, device=cpu, dtype=dtype).upscale(image)
    assert result.dtype == torch.float32 and result.shape == reference.shape
    assert _psnr(result, reference) > 45.0


def test_precision_and_device_resolution() -> None:
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda", 0)) == torch.float16
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(OptionError):
        resolve_dtype("fp8", cpu)
    assert resolve_device("cpu") == cpu
    with pytest.raises(OptionError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == cpu
        with pytest.raises(DeviceError, match="no CUDA"):
            resolve_device("cuda:0")
