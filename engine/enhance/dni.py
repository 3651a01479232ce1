"""Deep network interpolation (Wang et al., 2019): blend two trained networks of the same
architecture weight by weight to get a continuous control between them."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from engine.errors import OptionError, UnsupportedModelError


def interpolate_state_dicts(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], weight_a: float
) -> dict[str, torch.Tensor]:
    """`weight_a * a + (1 - weight_a) * b`, key by key.

    With a = realesr-general-x4v3 and b = realesr-general-wdn-x4v3, `weight_a` is the
    reference Real-ESRGAN's `denoise_strength`: 1 keeps all the noise removal of x4v3,
    0 is the weak-denoise network alone.
    """
    if not 0.0 <= weight_a <= 1.0:
        raise OptionError(f"denoise strength must be within [0, 1], got {weight_a}")
    if a.keys() != b.keys():
        missing = sorted(set(a) ^ set(b))[:5]
        raise UnsupportedModelError(f"cannot interpolate networks with different layers: {missing}")
    blended: dict[str, torch.Tensor] = {}
    for key, tensor_a in a.items():
        tensor_b = b[key]
        if tensor_a.shape != tensor_b.shape:
            raise UnsupportedModelError(
                f"cannot interpolate {key}: "
                f"shapes {tuple(tensor_a.shape)} and {tuple(tensor_b.shape)}"
            )
        blended[key] = weight_a * tensor_a + (1.0 - weight_a) * tensor_b
    return blended
