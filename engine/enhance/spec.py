"""What a super-resolution network is, as data: detected from a state dict, buildable."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from engine.enhance.arch import RRDBNet, SRVGGNetCompact
from engine.enhance.arch.rrdbnet import UNSHUFFLE_FACTOR
from engine.enhance.arch.srvgg import Activation
from engine.errors import UnsupportedModelError

Arch = Literal["SRVGGNetCompact", "RRDBNet"]


@dataclass(frozen=True)
class NetworkSpec:
    """The hyperparameters that fix a network's shape; equal specs load the same state dicts."""

    arch: Arch
    scale: int
    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    # SRVGGNetCompact
    num_conv: int = 0
    act_type: Activation = "prelu"
    # RRDBNet
    num_block: int = 0
    num_grow_ch: int = 32

    def build(self) -> nn.Module:
        if self.arch == "SRVGGNetCompact":
            return SRVGGNetCompact(
                self.num_in_ch,
                self.num_out_ch,
                self.num_feat,
                self.num_conv,
                self.scale,
                self.act_type,
            )
        return RRDBNet(
            self.num_in_ch,
            self.num_out_ch,
            self.scale,
            self.num_feat,
            self.num_block,
            self.num_grow_ch,
        )

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (RRDBNet pixel-unshuffles x2 and x1)."""
        return UNSHUFFLE_FACTOR[self.scale] if self.arch == "RRDBNet" else 1

    @property
    def receptive_radius(self) -> int:
        """Input pixels on each side that can influence one output pixel (an upper bound).

        A tile padded by at least this much produces exactly the pixels of an untiled run.
        """
        if self.arch == "SRVGGNetCompact":
            # num_conv + 2 convolutions of 3x3 at input resolution; the skip path is nearest.
            return self.num_conv + 2
        # At feature resolution: conv_first, 15 convs per RRDB, conv_body; the four convs after
        # upsampling add 1/2 + 3 * 1/4 feature pixels, rounded up to 2. Pixel-unshuffle by u
        # turns a feature radius r into at most u * r + u - 1 input pixels.
        u = UNSHUFFLE_FACTOR[self.scale]
        feature_radius = 1 + 15 * self.num_block + 1 + 2
        return u * feature_radius + u - 1

    @property
    def flops_per_input_pixel(self) -> int:
        """Multiply-adds x 2 of the convolutions per input pixel (activations and adds ignored)."""
        if self.arch == "SRVGGNetCompact":
            f, c = self.num_feat, self.num_in_ch
            macs = 9 * (c * f + self.num_conv * f * f + f * self.num_out_ch * self.scale**2)
            return 2 * macs
        f, g, u = self.num_feat, self.num_grow_ch, UNSHUFFLE_FACTOR[self.scale]
        rdb = 9 * sum((f + i * g) * g for i in range(4)) + 9 * (f + 4 * g) * f
        # Per feature pixel: conv_first, body, conv_body; then up1 at 4x, up2/hr/last at 16x pixels.
        per_feature = (
            9 * self.num_in_ch * u * u * f
            + 3 * self.num_block * rdb
            + 9 * f * f
            + 4 * 9 * f * f
            + 16 * (2 * 9 * f * f + 9 * f * self.num_out_ch)
        )
        return round(2 * per_feature / (u * u))


def detect_network(state: Mapping[str, torch.Tensor]) -> NetworkSpec:
    """Recognise the architecture and hyperparameters of a Real-ESRGAN state dict from its keys
    and tensor shapes alone."""
    if "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state:
        return _detect_rrdbnet(state)
    if "body.0.weight" in state and "body.0.rdb1.conv1.weight" not in state:
        return _detect_srvgg(state)
    if "model.0.weight" in state:
        raise UnsupportedModelError(
            "this is an old-format ESRGAN checkpoint (keys 'model.N.*'); convert it to the "
            "RRDBNet key layout (conv_first, body.N.rdbM, conv_body, ...) first"
        )
    sample = ", ".join(list(state)[:5])
    raise UnsupportedModelError(
        f"unrecognised network (first keys: {sample}); AMP knows RRDBNet and SRVGGNetCompact"
    )


def _detect_rrdbnet(state: Mapping[str, torch.Tensor]) -> NetworkSpec:
    first = state["conv_first.weight"]
    num_feat, in_ch_total = int(first.shape[0]), int(first.shape[1])
    num_out_ch = int(state["conv_last.weight"].shape[0])
    num_grow_ch = int(state["body.0.rdb1.conv1.weight"].shape[0])
    block_ids = {
        int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.rdb1\.conv1\.weight$", k))
    }
    num_block = max(block_ids) + 1
    # The unshuffle factor shows in conv_first's input channels: 3 (x4), 12 (x2) or 48 (x1).
    for scale, u in UNSHUFFLE_FACTOR.items():
        if in_ch_total == num_out_ch * u * u:
            return NetworkSpec(
                "RRDBNet",
                scale,
                num_out_ch,
                num_out_ch,
                num_feat,
                num_block=num_block,
                num_grow_ch=num_grow_ch,
            )
    raise UnsupportedModelError(
        f"RRDBNet with {in_ch_total} input channels for {num_out_ch} output channels "
        "matches no known scale (x4: 1:1, x2: 4:1, x1: 16:1)"
    )


def _detect_srvgg(state: Mapping[str, torch.Tensor]) -> NetworkSpec:
    conv_ids = sorted(
        int(m.group(1))
        for k, v in state.items()
        if (m := re.match(r"body\.(\d+)\.weight$", k)) and v.ndim == 4
    )
    last = conv_ids[-1]
    if conv_ids != list(range(0, last + 1, 2)):
        raise UnsupportedModelError(
            "SRVGGNetCompact-like state dict with convolutions at odd positions"
        )
    if "body.1.weight" not in state:
        # ReLU and LeakyReLU have no weights, so they cannot be told apart from the file.
        raise UnsupportedModelError(
            "SRVGGNetCompact without PReLU weights: its activation cannot be detected from the file"
        )
    num_in_ch = int(state["body.0.weight"].shape[1])
    num_feat = int(state["body.0.weight"].shape[0])
    out_channels = int(state[f"body.{last}.weight"].shape[0])
    scale = math.isqrt(out_channels // num_in_ch)
    if num_in_ch * scale * scale != out_channels:
        raise UnsupportedModelError(
            f"SRVGGNetCompact last conv has {out_channels} channels, not in_ch x scale^2"
        )
    return NetworkSpec(
        "SRVGGNetCompact",
        scale,
        num_in_ch,
        num_in_ch,
        num_feat,
        num_conv=(last - 2) // 2,
        act_type="prelu",
    )
