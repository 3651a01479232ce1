"""Deep network interpolation: w = s * W(x4v3) + (1 - s) * W(wdn), the reference's semantics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.enhance.arch import SRVGGNetCompact
from engine.enhance.dni import interpolate_state_dicts
from engine.enhance.models import load_enhancement_model
from engine.errors import OptionError, UnsupportedModelError


def _state(seed: int, num_feat: int = 8, num_conv: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return SRVGGNetCompact(num_feat=num_feat, num_conv=num_conv).state_dict()


def test_interpolation_arithmetic() -> None:
    a, b = _state(1), _state(2)
    for s in (0.0, 0.3, 1.0):
        blended = interpolate_state_dicts(a, b, s)
        for key in a:
            torch.testing.assert_close(blended[key], s * a[key] + (1 - s) * b[key])
    assert all(torch.equal(interpolate_state_dicts(a, b, 1.0)[k], a[k]) for k in a)


def test_interpolation_refuses_mismatched_networks() -> None:
    a = _state(1)
    b = SRVGGNetCompact(num_feat=4, num_conv=2).state_dict()
    with pytest.raises(UnsupportedModelError, match="shapes"):
        interpolate_state_dicts(a, b, 0.5)
    with pytest.raises(UnsupportedModelError, match="different layers"):
        interpolate_state_dicts(a, {k: v for k, v in a.items() if k != "body.0.bias"}, 0.5)
    with pytest.raises(OptionError):
        interpolate_state_dicts(a, a, 1.5)


@pytest.fixture
def general_pair(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A stand-in x4v3/wdn pair: the official names and network shape, random weights
    (the official files cannot be downloaded here)."""
    x4v3, wdn = _state(10, num_feat=64, num_conv=32), _state(20, num_feat=64, num_conv=32)
    torch.save({"params": x4v3}, tmp_path / "realesr-general-x4v3.pth")
    torch.save({"params": wdn}, tmp_path / "realesr-general-wdn-x4v3.pth")
    return tmp_path / "realesr-general-x4v3.pth", x4v3, wdn


def test_denoise_strength_blends_the_two_general_networks(general_pair) -> None:  # noqa: ANN001
    path, x4v3, wdn = general_pair
    loaded = load_enhancement_model(str(path), denoise=0.3)
    assert loaded.denoise == 0.3
    assert len(loaded.files) == 2
    weights = loaded.network.state_dict()
    for key in x4v3:
        torch.testing.assert_close(weights[key], 0.3 * x4v3[key] + 0.7 * wdn[key])


def test_denoise_defaults_to_the_reference_half_and_one_needs_no_partner(general_pair) -> None:  # noqa: ANN001
    path, x4v3, wdn = general_pair
    assert load_enhancement_model(str(path)).denoise == 0.5
    (path.parent / "realesr-general-wdn-x4v3.pth").unlink()
    loaded = load_enhancement_model(str(path), denoise=1.0)
    assert loaded.files == (path,)
    assert all(torch.equal(loaded.network.state_dict()[k], x4v3[k]) for k in x4v3)


def test_denoise_is_refused_for_other_models(anime_weights: Path) -> None:
    with pytest.raises(OptionError, match="denoise partner"):
        load_enhancement_model(str(anime_weights), denoise=0.5)
    assert load_enhancement_model(str(anime_weights)).denoise is None


def test_denoise_out_of_range(general_pair) -> None:  # noqa: ANN001
    with pytest.raises(OptionError, match=r"\[0, 1\]"):
        load_enhancement_model(str(general_pair[0]), denoise=1.2)


def test_a_file_under_an_official_name_must_be_that_network(tmp_path: Path) -> None:
    torch.save({"params": _state(1)}, tmp_path / "realesr-general-x4v3.pth")
    with pytest.raises(UnsupportedModelError, match="not the realesr-general-x4v3 network"):
        load_enhancement_model(str(tmp_path / "realesr-general-x4v3.pth"), denoise=1.0)
