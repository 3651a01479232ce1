"""Device memory per tile: measured on the meta device, checked against a real allocator, and
enough to plan a 100-megapixel photo on a 16 GB GPU."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from engine.enhance.memory import META, peak_bytes
from engine.enhance.spec import NetworkSpec
from engine.enhance.upscaler import GPU_MEMORY_SHARE, TileSettings, Upscaler

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL = {
    "realesr-general-x4v3": NetworkSpec("SRVGGNetCompact", 4, num_feat=64, num_conv=32),
    "RealESRGAN_x4plus": NetworkSpec("RRDBNet", 4, num_feat=64, num_block=23, num_grow_ch=32),
    "RealESRGAN_x2plus": NetworkSpec("RRDBNet", 2, num_feat=64, num_block=23, num_grow_ch=32),
}
# The peak resident memory of a process is what the CPU allocator really held. Linux resets
# the peak to the current figure on request (proc(5), clear_refs "5"), so the peak after one
# launch of a large tile, less the memory before it, is what that launch took.
_REAL_PEAK = textwrap.dedent(
    """
    import gc, json, re, sys
    from pathlib import Path
    import torch
    from engine.enhance.spec import NetworkSpec
    from engine.enhance.upscaler import Upscaler

    def kib(field):
        status = Path("/proc/self/status").read_text()
        return int(re.search(field + r":\\s+(\\d+) kB", status).group(1)) * 1024

    spec = NetworkSpec(**json.loads(sys.argv[1]))
    side = int(sys.argv[2])
    upscaler = Upscaler(spec.build(), spec, device=torch.device("cpu"), dtype=torch.float32)
    predicted = upscaler.device_bytes_per_input_pixel() * side * side
    tile = torch.zeros((1, 3, side, side), dtype=torch.uint16)
    with torch.inference_mode():
        upscaler._launch(tile[:, :, :32, :32], torch.uint16, False)  # oneDNN's one-off set-up
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")
        before = kib("VmRSS")
        upscaler._launch(tile, torch.uint16, False).result()
    print(json.dumps({"predicted": predicted, "measured": kib("VmHWM") - before}))
    """
)


@pytest.mark.parametrize(
    "spec",
    [
        NetworkSpec("SRVGGNetCompact", 4, num_feat=64, num_conv=2),
        NetworkSpec("RRDBNet", 2, num_feat=64, num_block=1, num_grow_ch=32),
    ],
    ids=["srvgg-x4", "rrdbnet-x2"],
)
def test_meta_measurement_matches_the_real_allocators_peak(spec: NetworkSpec) -> None:
    fields = dataclasses.asdict(spec)
    done = subprocess.run(
        [sys.executable, "-c", _REAL_PEAK, json.dumps(fields), "768"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    figures = json.loads(done.stdout)
    assert figures["predicted"] > 100e6  # large enough that allocator noise is small beside it
    assert 0.95 < figures["measured"] / figures["predicted"] < 1.05


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_the_cost_per_pixel_does_not_depend_on_the_tile(name: str) -> None:
    spec = OFFICIAL[name]
    with torch.device(META):
        probe = Upscaler(spec.build(), spec, device=META, dtype=torch.float16)
    per_px = probe.device_bytes_per_input_pixel()  # measured on a 64-pixel tile
    for side in (96, 512):
        # The costliest variant of a launch, the one the cost is quoted for: 16-bit, grey.
        tile = torch.zeros((1, 3, side, side), dtype=torch.uint16)
        measured = peak_bytes(lambda tile=tile: probe._launch(tile, torch.uint16, True))
        assert 0.99 * per_px * side * side < measured <= per_px * side * side


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_a_100_megapixel_photo_fits_a_16_gb_gpu(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A T4 (16 GB, about 15 GB free once CUDA and the weights are up) enhancing a 100 MP
    photo in fp16: the planned tiles fit, measured at their real shape, whatever the image."""
    spec = OFFICIAL[name]
    tiles = TileSettings(tile_px=None, tile_pad_px=10, tile_batch=2)
    with torch.device(META):
        upscaler = Upscaler(spec.build(), spec, device=META, dtype=torch.float16, tiles=tiles)
    budget = int(15e9 * GPU_MEMORY_SHARE)
    height, width = 8660, 11547  # 100 MP, 4:3
    tile_px = upscaler.tile_px_for(height, width, budget_bytes=budget)
    assert tile_px >= 512  # large tiles: the context padding stays a small overhead

    _, _, plan = upscaler.plan(height, width, tile_px)
    read = max(max(t.read.height, t.read.width) for t in plan)
    assert read <= tile_px + 20
    batch = torch.zeros((tiles.tile_batch, 3, read, read), dtype=torch.uint8)
    peak = peak_bytes(lambda: upscaler._launch(batch, torch.uint8, False))
    assert peak <= budget
