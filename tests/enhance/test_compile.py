"""`compile_mode`: the compiled network gives the eager network's pixels, and a compiler that
cannot run costs speed, never the image."""

from __future__ import annotations

import logging

import pytest
import torch
import torch._inductor.config as inductor_config
from torch._dynamo.utils import counters

from engine.enhance.spec import NetworkSpec
from engine.enhance.upscaler import TileSettings, Upscaler
from engine.errors import OptionError

CPU = torch.device("cpu")
SPEC = NetworkSpec("SRVGGNetCompact", 4, num_feat=8, num_conv=3)


def _pair(compile_mode: str) -> tuple[Upscaler, Upscaler]:
    torch.manual_seed(0)
    network = SPEC.build().eval()
    tiles = TileSettings(tile_px=24, tile_pad_px=SPEC.receptive_radius)
    eager = Upscaler(network, SPEC, device=CPU, dtype=torch.float32, tiles=tiles)
    compiled_network = SPEC.build().eval()
    compiled_network.load_state_dict(network.state_dict())
    compiled = Upscaler(
        compiled_network,
        SPEC,
        device=CPU,
        dtype=torch.float32,
        tiles=tiles,
        compile_mode=compile_mode,
    )
    return eager, compiled


def test_compiled_network_gives_the_eager_pixels_with_one_graph_per_tile_shape() -> None:
    torch.compiler.reset()
    counters.clear()
    eager, compiled = _pair("default")
    generator = torch.Generator().manual_seed(1)
    for shape in [(3, 48, 60), (3, 48, 60), (3, 60, 48)]:
        image = torch.rand(shape, generator=generator)
        assert (compiled.upscale(image) - eager.upscale(image)).abs().max().item() < 1e-5
    # 24-px tiles with 5 px of context read 29x29, 29x34 and 29x17 pixels on a 48x60 image,
    # 29x29, 34x29 and 17x29 on 60x48: five static graphs, none for the repeated size.
    assert counters["stats"]["unique_graphs"] == 5


def test_a_compiler_that_cannot_run_falls_back_to_eager(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/c++",))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    torch.compiler.reset()  # forget graphs compiled for these shapes by earlier tests
    eager, compiled = _pair("default")
    image = torch.randint(0, 256, (3, 30, 50), dtype=torch.uint8)
    with caplog.at_level(logging.WARNING, logger="engine.enhance.upscaler"):
        result = compiled.upscale(image)
    assert torch.equal(result, eager.upscale(image))
    assert "torch.compile failed (InvalidCxxCompiler" in caplog.text


def test_unknown_compile_mode_is_refused() -> None:
    with pytest.raises(OptionError, match="unknown compile mode 'fastest'"):
        Upscaler(SPEC.build(), SPEC, device=CPU, dtype=torch.float32, compile_mode="fastest")
