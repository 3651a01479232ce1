"""Read Real-ESRGAN `.pth` files safely and turn them into ready networks."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from engine.enhance.spec import NetworkSpec, detect_network
from engine.errors import ModelNotFoundError, UnsupportedModelError

StateDict = dict[str, torch.Tensor]


def read_state_dict(path: Path) -> StateDict:
    """The network weights stored in `path`, on the CPU.

    `weights_only=True` refuses arbitrary pickled code; `map_location="cpu"` lets files saved
    from CUDA tensors load on machines without a GPU. Real-ESRGAN checkpoints wrap the weights
    in `params_ema` (the EMA of training, preferred, as the reference does) or `params`.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"model file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        raise UnsupportedModelError(
            f"{path} is not a readable PyTorch weights file: {exc}"
        ) from exc
    if isinstance(obj, Mapping):
        for key in ("params_ema", "params"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UnsupportedModelError(f"{path} holds no state dict of tensors")
    return dict(obj)


def build_network(state: Mapping[str, torch.Tensor]) -> tuple[nn.Module, NetworkSpec]:
    """Detect the architecture, build it and load the weights strictly, in eval mode."""
    spec = detect_network(state)
    network = spec.build()
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UnsupportedModelError(f"weights do not fit the detected {spec.arch}: {exc}") from exc
    return network.eval().requires_grad_(False), spec
