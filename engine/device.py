"""Choosing the compute device and the number format, once, at the edge."""

from __future__ import annotations

from typing import Literal

import torch

from engine.errors import DeviceError, OptionError

Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` is the first CUDA GPU when there is one, else the CPU; `cuda:N` must exist."""
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise OptionError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise OptionError(f"unsupported device {name!r}: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {name!r} was asked for but this torch build sees no CUDA GPU "
            f"(torch {torch.__version__}); use --device cpu or install the CUDA build of torch"
        )
    index = device.index or 0
    if index >= torch.cuda.device_count():
        raise DeviceError(f"no GPU {index}: this machine has {torch.cuda.device_count()}")
    return torch.device("cuda", index)


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """`auto` is fp16 on CUDA (tensor cores, half the memory traffic) and fp32 on the CPU,
    where half precision is emulated and slower."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[precision]
    except KeyError:
        raise OptionError(
            f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}"
        ) from None
