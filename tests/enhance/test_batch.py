"""The batch pipeline: input order, bounded look-ahead, and one failure never stops the rest."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.enhance import batch as batch_module
from engine.enhance.batch import EnhanceJob, FileResult, run_batch
from engine.enhance.load import build_network, read_state_dict
from engine.enhance.upscaler import Upscaler


def _small_photos(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_pipeline_keeps_order_bounds_memory_and_isolates_failures(
    tmp_path: Path, anime_weights: Path, monkeypatch
) -> None:  # noqa: ANN001
    photos = _small_photos(tmp_path, 12)
    photos[4].write_bytes(b"broken")
    network, spec = build_network(read_state_dict(anime_weights))
    upscaler = Upscaler(network, spec, device=torch.device("cpu"), dtype=torch.float32)

    decode_threads: set[str] = set()
    original_decode = batch_module._decode

    def spying_decode(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        decode_threads.add(threading.current_thread().name)
        return original_decode(*args, **kwargs)

    monkeypatch.setattr(batch_module, "_decode", spying_decode)
    pulled = 0
    emitted: list[FileResult] = []
    ahead: list[int] = []

    def feed() -> Iterator[Path]:
        nonlocal pulled
        for photo in photos:
            pulled += 1
            ahead.append(pulled - len(emitted))
            yield photo

    job = EnhanceJob(out_root=tmp_path / "out", io_workers=2)
    report = run_batch(feed(), upscaler, job, on_result=emitted.append)

    assert [r.source for r in report.results] == photos  # input order
    assert [r.status for r in report.results].count("enhanced") == 11
    assert report.results[4].status == "failed"
    assert "not a JPEG, PNG, TIFF, WebP or BMP" in (report.results[4].error or "")
    assert max(ahead) <= 2 * 2 * 2 + 1  # decode look-ahead plus in-flight writes, never the folder
    assert decode_threads and all(name.startswith("amp-decode") for name in decode_threads)
    assert all(report.stage_seconds[s] > 0 for s in ("decode", "enhance", "encode"))
    assert len(list((tmp_path / "out").glob("*.png"))) == 11
