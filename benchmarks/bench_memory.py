"""Device memory of enhancement: the planned tile and its measured peak, by photo size.

    python benchmarks/bench_memory.py                  # a 16 GB T4, fp16
    python benchmarks/bench_memory.py --gpu-gb 80 --precision bf16

Runs on any machine: each launch is measured on PyTorch's meta device (shapes, no data) with
live tensor bytes counted (`engine/enhance/memory.py`, checked against a real allocator in
tests/enhance/test_memory.py). For each official network and photo size it gives the tile
the automatic planner picks on a GPU with `--free-gb` free, and the measured peak of one
launch at that tile: it must stay flat once photos are larger than a tile. Writes JSON and a
PNG plot.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_enhance import NETWORKS  # noqa: E402
from engine.device import resolve_dtype  # noqa: E402
from engine.enhance.memory import META, peak_bytes  # noqa: E402
from engine.enhance.upscaler import GPU_MEMORY_SHARE, TileSettings, Upscaler  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-gb", type=float, default=16.0, help="the GPU's memory")
    parser.add_argument(
        "--free-gb", type=float, help="free once CUDA and the weights are up (default: GPU - 1)"
    )
    parser.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--megapixels", nargs="+", type=float, default=[3, 12, 24, 50, 100])
    parser.add_argument("--tile-batch", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    free_bytes = int((args.free_gb or args.gpu_gb - 1.0) * 1e9)
    if free_bytes <= 0 or free_bytes > args.gpu_gb * 1e9:
        parser.error("--free-gb must be more than 0 and at most --gpu-gb (and --gpu-gb over 1)")
    budget = int(free_bytes * GPU_MEMORY_SHARE)
    dtype = resolve_dtype(args.precision, torch.device("cuda"))
    tiles = TileSettings(tile_px=None, tile_pad_px=10, tile_batch=args.tile_batch)

    rows = []
    per_pixel: dict[str, int] = {}
    for name, spec in NETWORKS.items():
        with torch.device(META):
            upscaler = Upscaler(spec.build(), spec, device=META, dtype=dtype, tiles=tiles)
        per_px = per_pixel[name] = upscaler.device_bytes_per_input_pixel()
        for megapixels in args.megapixels:
            height = round((megapixels * 1e6 * 3 / 4) ** 0.5)  # 4:3, landscape
            width = round(megapixels * 1e6 / height)
            # The budget of the GPU described, not of this machine.
            tile_px = upscaler.tile_px_for(height, width, budget_bytes=budget)
            _, _, plan = upscaler.plan(height, width, tile_px)
            read_h = max(t.read.height for t in plan)
            read_w = max(t.read.width for t in plan)
            batch = torch.zeros(
                (min(tiles.tile_batch, len(plan)), 3, read_h, read_w), dtype=torch.uint8
            )
            peak = peak_bytes(partial(upscaler._launch, batch, torch.uint8, False))
            rows.append(
                {
                    "network": name,
                    "megapixels": round(height * width / 1e6, 2),
                    "tile_px": tile_px or "whole image",
                    "tiles": len(plan),
                    "peak_gb": peak / 1e9,
                    "fits": peak <= budget,
                }
            )
            print(
                f"{name:22s} {height * width / 1e6:7.1f} MP  tile {tile_px or 'whole':>6}  "
                f"{len(plan):4d} tiles  peak {peak / 1e9:6.2f} GB  ({per_px} B/px)",
                flush=True,
            )

    document = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "gpu_gb": args.gpu_gb,
        "free_gb": free_bytes / 1e9,
        "planned_share": GPU_MEMORY_SHARE,
        "precision": args.precision,
        "tile_batch": args.tile_batch,
        "bytes_per_input_pixel": per_pixel,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"memory-{args.gpu_gb:g}gb-{args.precision}"
    (args.out / f"{stem}.json").write_text(json.dumps(document, indent=2) + "\n")
    plot(rows, budget, args, args.out / f"{stem}.png")
    print(f"wrote {args.out / stem}.json and .png")


def plot(rows: list[dict], budget: int, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in NETWORKS:
        mine = [r for r in rows if r["network"] == name]
        ax.plot([r["megapixels"] for r in mine], [r["peak_gb"] for r in mine], "o-", label=name)
    ax.axhline(budget / 1e9, color="grey", linestyle="--", label="planned share of free memory")
    ax.axhline(args.gpu_gb, color="black", linestyle=":", label=f"{args.gpu_gb:g} GB GPU")
    ax.set_xlabel("photo size (input megapixels)")
    ax.set_ylabel("peak device memory of one launch (GB)")
    ax.set_title(f"Enhancement device memory, {args.precision}, measured on the meta device")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
