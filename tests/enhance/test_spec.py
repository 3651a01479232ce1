"""Architecture detection: networks of many shapes round-trip through their state dicts."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from engine.enhance.arch import RRDBNet, SRVGGNetCompact
from engine.enhance.load import build_network, read_state_dict
from engine.enhance.spec import NetworkSpec, detect_network
from engine.errors import ModelNotFoundError, UnsupportedModelError

SPECS = [
    NetworkSpec("SRVGGNetCompact", 4, num_feat=64, num_conv=32),
    NetworkSpec("SRVGGNetCompact", 4, num_feat=64, num_conv=16),
    NetworkSpec("SRVGGNetCompact", 2, num_feat=24, num_conv=3),
    NetworkSpec("SRVGGNetCompact", 3, num_feat=8, num_conv=0),
    NetworkSpec("RRDBNet", 4, num_feat=64, num_block=23, num_grow_ch=32),
    NetworkSpec("RRDBNet", 2, num_feat=16, num_block=2, num_grow_ch=8),
    NetworkSpec("RRDBNet", 1, num_feat=12, num_block=1, num_grow_ch=4),
    NetworkSpec("RRDBNet", 4, num_feat=32, num_block=6, num_grow_ch=16),
]


@pytest.mark.parametrize(
    "spec", SPECS, ids=lambda s: f"{s.arch}-x{s.scale}-{s.num_conv or s.num_block}"
)
def test_detection_recovers_every_hyperparameter(spec: NetworkSpec) -> None:
    state = spec.build().state_dict()
    assert detect_network(state) == spec
    network, detected = build_network(state)
    assert detected == spec
    x = torch.rand(1, 3, 8, 8)
    assert network(x).shape == (1, 3, 8 * spec.scale, 8 * spec.scale)


def test_real_weights_saved_from_cuda_load_on_cpu(anime_weights: Path) -> None:
    state = read_state_dict(anime_weights)
    assert len(state) == 53
    assert all(t.device.type == "cpu" for t in state.values())
    _, spec = build_network(state)
    assert spec == NetworkSpec("SRVGGNetCompact", 4, num_feat=64, num_conv=16, act_type="prelu")


def test_params_ema_is_preferred_over_params(tmp_path: Path) -> None:
    ema = SRVGGNetCompact(num_feat=4, num_conv=1).state_dict()
    raw = SRVGGNetCompact(num_feat=4, num_conv=1).state_dict()
    path = tmp_path / "both.pth"
    torch.save({"params": raw, "params_ema": ema}, path)
    loaded = read_state_dict(path)
    assert all(torch.equal(loaded[k], ema[k]) for k in ema)
    assert not all(torch.equal(loaded[k], raw[k]) for k in raw)


def test_bare_state_dict_and_params_only(tmp_path: Path) -> None:
    state = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).state_dict()
    torch.save(state, tmp_path / "bare.pth")
    torch.save({"params": state}, tmp_path / "params.pth")
    for name in ("bare.pth", "params.pth"):
        assert detect_network(read_state_dict(tmp_path / name)).arch == "RRDBNet"


def test_strict_loading_rejects_a_truncated_state_dict() -> None:
    state = SRVGGNetCompact(num_feat=8, num_conv=2).state_dict()
    del state["body.2.bias"]
    with pytest.raises(UnsupportedModelError, match="do not fit"):
        build_network(state)


def test_unknown_and_old_formats_are_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="old-format ESRGAN"):
        detect_network({"model.0.weight": torch.zeros(64, 3, 3, 3)})
    with pytest.raises(UnsupportedModelError, match="unrecognised network"):
        detect_network({"encoder.weight": torch.zeros(2, 2)})


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran while loading",))


def test_weights_only_loading_refuses_pickled_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        pickle.dump({"params": _Evil()}, f, protocol=2)
    with pytest.raises(UnsupportedModelError, match="not a readable PyTorch weights file"):
        read_state_dict(path)


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        read_state_dict(tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(UnsupportedModelError):
        read_state_dict(garbage)


@pytest.mark.parametrize(
    "spec",
    [
        NetworkSpec("SRVGGNetCompact", 4, num_feat=4, num_conv=3),
        NetworkSpec("RRDBNet", 2, num_feat=4, num_block=1, num_grow_ch=2),
        NetworkSpec("RRDBNet", 1, num_feat=4, num_block=1, num_grow_ch=2),
    ],
    ids=["srvgg", "rrdb-x2", "rrdb-x1"],
)
def test_receptive_radius_bounds_the_influence_of_one_pixel(spec: NetworkSpec) -> None:
    """Perturb one input pixel; output pixels farther than the radius must not change."""
    torch.manual_seed(0)
    network = spec.build().double().eval()
    size = 2 * spec.receptive_radius + 24
    size += -size % spec.size_multiple
    x = torch.rand(1, 3, size, size, dtype=torch.float64)
    y = x.clone()
    centre = size // 2
    y[..., centre, centre] += 1.0
    with torch.no_grad():
        changed = (network(x) - network(y)).abs().amax(dim=(0, 1)) > 0
    rows = changed.any(dim=1).nonzero().flatten()
    reach = max(centre - rows.min().item() // spec.scale, rows.max().item() // spec.scale - centre)
    assert 0 < reach <= spec.receptive_radius
    if spec.arch == "SRVGGNetCompact":
        assert reach == spec.receptive_radius  # the bound is tight, not merely safe


@pytest.mark.parametrize("spec", SPECS[2:4] + SPECS[5:7], ids=lambda s: f"{s.arch}-x{s.scale}")
def test_flops_per_input_pixel_match_torch_flop_counter(spec: NetworkSpec) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    network = spec.build().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network(torch.rand(1, 3, 16, 16))
    assert counter.get_total_flops() == spec.flops_per_input_pixel * 16 * 16
