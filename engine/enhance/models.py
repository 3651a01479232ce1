"""From what the user typed (`--model`, `--denoise`) to a network with its weights.

A model is a manifest name (`realesr-general-x4v3`) or a path to a `.pth`. A manifest entry
with a `denoise_partner` (realesr-general-x4v3, whose partner is the weak-denoise
realesr-general-wdn-x4v3) offers a denoise strength: the two networks' weights are blended
(deep network interpolation); other models have no such control.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from engine.enhance.dni import interpolate_state_dicts
from engine.enhance.load import build_network, read_state_dict
from engine.enhance.spec import NetworkSpec
from engine.errors import OptionError, UnsupportedModelError
from engine.registry.locate import find_model_file
from engine.registry.manifest import EnhanceEntry, Manifest, load_manifest

DEFAULT_MODEL = "realesr-general-x4v3"
# The reference inference script's default for realesr-general-x4v3.
DEFAULT_DENOISE = 0.5


@dataclass(frozen=True)
class LoadedModel:
    network: nn.Module
    spec: NetworkSpec
    name: str
    files: tuple[Path, ...]
    denoise: float | None
    weights_bytes: int


def load_enhancement_model(
    model: str = DEFAULT_MODEL, denoise: float | None = None, *, manifest: Manifest | None = None
) -> LoadedModel:
    manifest = manifest or load_manifest()
    path = find_model_file(model, manifest=manifest)
    entry = _manifest_entry(model, path, manifest)
    partner = entry.denoise_partner if entry is not None else None
    if denoise is not None and partner is None:
        raise OptionError(
            f"--denoise needs a model with a denoise partner (realesr-general-x4v3); "
            f"{model} has none"
        )
    if denoise is not None and not 0.0 <= denoise <= 1.0:
        raise OptionError(f"--denoise must be within [0, 1], got {denoise}")
    strength = (DEFAULT_DENOISE if denoise is None else denoise) if partner else None

    files = [path]
    state = read_state_dict(path)
    if partner is not None and strength is not None and strength < 1.0:
        partner_path = _partner_file(path, partner, manifest)
        files.append(partner_path)
        state = interpolate_state_dicts(state, read_state_dict(partner_path), strength)
    network, spec = build_network(state)
    if entry is not None and spec != NetworkSpec(**entry.network.model_dump()):
        raise UnsupportedModelError(
            f"{path} is not the {entry.name} network the manifest describes "
            f"(found {spec.arch} x{spec.scale}); pass it by path under another file name"
        )
    name = entry.name if entry is not None else path.name
    return LoadedModel(
        network, spec, name, tuple(files), strength, sum(f.stat().st_size for f in files)
    )


def _manifest_entry(model: str, path: Path, manifest: Manifest) -> EnhanceEntry | None:
    """The entry named by `model`, or whose official file name `path` carries."""
    for entry in manifest.models.values():
        if not isinstance(entry, EnhanceEntry):
            continue
        if entry.name == model or any(f.name == path.name for f in entry.files):
            return entry
    return None


def _partner_file(path: Path, partner: str, manifest: Manifest) -> Path:
    """The partner's file next to `path`, as the reference finds it, else by lookup."""
    for file in manifest.get(partner).files:
        sibling = path.with_name(file.name)
        if sibling.is_file():
            return sibling
    return find_model_file(partner, manifest=manifest)
