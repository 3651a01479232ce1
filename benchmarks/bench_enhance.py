"""Enhancement throughput: AMP's engine against the reference algorithm, same model, same inputs.

    python benchmarks/bench_enhance.py                       # defaults for the device found
    python benchmarks/bench_enhance.py --device cuda --precisions fp16 bf16 --megapixels 3 12 24

For each network (realesr-general-x4v3-shaped SRVGGNetCompact, RealESRGAN_x2plus- and
x4plus-shaped RRDBNet), precision and input size it measures input megapixels/s and images/s
of one enhancement (pixels in memory to pixels in memory, native scale), GPU utilisation
(NVML, mean over the timed runs), peak GPU memory, CPU utilisation, and the model-FLOP
utilisation: FLOPs per input pixel (counted per layer, checked against torch's FLOP counter
in the tests) x pixels/s / the device's peak. The baseline runs in the same process on the
same inputs: benchmarks/reference_algorithm.py (the reference's algorithm: whole image on the
device, one tile at a time, batch 1, CPU post-processing) and, when the `realesrgan` package
is importable, the real `RealESRGANer`. Weights are the official files when found (`amp models
fetch`), otherwise random weights of the exact architecture: speed does not depend on them.
Writes JSON and a PNG plot.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import psutil
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import cpu_model  # noqa: E402
from benchmarks.reference_algorithm import ReferenceEnhancer  # noqa: E402
from engine.device import resolve_device, resolve_dtype  # noqa: E402
from engine.enhance.load import build_network, read_state_dict  # noqa: E402
from engine.enhance.photo import enhance_pixels  # noqa: E402
from engine.enhance.spec import NetworkSpec  # noqa: E402
from engine.enhance.upscaler import COMPILE_MODES, TileSettings, Upscaler  # noqa: E402
from engine.errors import ModelNotFoundError  # noqa: E402
from engine.registry.locate import find_model_file  # noqa: E402
from engine.resources import ResourceMeter  # noqa: E402

NETWORKS = {
    "realesr-general-x4v3": NetworkSpec("SRVGGNetCompact", 4, num_feat=64, num_conv=32),
    "RealESRGAN_x2plus": NetworkSpec("RRDBNet", 2, num_feat=64, num_block=23, num_grow_ch=32),
    "RealESRGAN_x4plus": NetworkSpec("RRDBNet", 4, num_feat=64, num_block=23, num_grow_ch=32),
}
# Dense peak FLOP/s by GPU name (first match wins) and precision, from NVIDIA's data sheets:
# tensor cores for fp16/bf16; fp32 convolutions run as TF32 on tensor cores by default in
# PyTorch (cudnn.allow_tf32) where the GPU has them (Ampere and later), so that is their peak.
PEAK_FLOPS: list[tuple[str, dict[str, float]]] = [
    ("T4", {"fp16": 65e12, "fp32": 8.1e12}),
    ("H100 PCIe", {"fp16": 756e12, "bf16": 756e12, "fp32": 378e12}),
    ("H100", {"fp16": 989.4e12, "bf16": 989.4e12, "fp32": 494.7e12}),
    ("H200", {"fp16": 989.4e12, "bf16": 989.4e12, "fp32": 494.7e12}),
]
SAMPLE_PHOTO = (
    Path(__file__).resolve().parent.parent.parent / "shared/faces/paul_allen/paul_allen3.jpg"
)


@dataclass
class Measurement:
    network: str
    weights: str
    precision: str
    megapixels: float
    engine: str  # "amp" | "amp+compile:<mode>" | "reference-algorithm" | "realesrgan"
    tile: str
    first_run_seconds: float  # the warm-up: cuDNN autotuning, and compilation where asked
    seconds: float
    megapixels_per_s: float
    images_per_s: float
    tflops: float
    mfu: float | None
    gpu_utilization: float | None
    peak_gpu_memory_gb: float | None
    cpu_utilization: float


def photo_of(megapixels: float) -> np.ndarray:
    """A real photo resized to `megapixels` (speed does not depend on content, but be honest)."""
    with Image.open(SAMPLE_PHOTO) as im:
        rgb = np.asarray(im.convert("RGB"))
    h, w = rgb.shape[:2]
    factor = (megapixels * 1e6 / (h * w)) ** 0.5
    return cv2.resize(
        rgb, (max(8, round(w * factor)), max(8, round(h * factor))), interpolation=cv2.INTER_CUBIC
    )


def load_network(name: str, spec: NetworkSpec) -> tuple[torch.nn.Module, str]:
    try:
        network, found = build_network(read_state_dict(find_model_file(name)))
        if found == spec:
            return network, "official"
    except ModelNotFoundError:
        pass
    torch.manual_seed(0)
    return spec.build().eval(), "random (exact architecture)"


def peak_flops(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_FLOPS:
        if key in name:
            return peaks.get(precision)
    return None


def timed(run, image: np.ndarray, repeat: int, device: torch.device) -> tuple[list[float], dict]:  # noqa: ANN001
    start = time.perf_counter()
    run(image)  # warm-up: cuDNN autotuning, allocator growth, compilation
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    first_run_seconds = time.perf_counter() - start
    times = []
    gpu_index = (device.index or 0) if device.type == "cuda" else None
    with ResourceMeter(gpu_index=gpu_index, sample_interval_s=0.05) as meter:
        for _ in range(repeat):
            start = time.perf_counter()
            run(image)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    usage = meter.usage()
    extra = {
        "first_run_seconds": first_run_seconds,
        "gpu_utilization": usage.gpu_utilization,
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated(device) / 1e9
        if device.type == "cuda"
        else None,
        "cpu_utilization": usage.cpu_seconds
        / max(usage.wall_seconds, 1e-9)
        / (os.cpu_count() or 1),
    }
    return times, extra


def real_realesrgan(
    network: torch.nn.Module, scale: int, device: torch.device, half: bool, tile: int
):  # noqa: ANN201
    """The real RealESRGANer when the package imports (with the usual torchvision shim)."""
    try:
        import torchvision.transforms.functional as functional

        sys.modules.setdefault("torchvision.transforms.functional_tensor", functional)
        from realesrgan import RealESRGANer
    except Exception:  # noqa: BLE001 - not installed here: the re-implementation stands in
        return None
    upsampler = RealESRGANer(
        scale=scale,
        model_path=None,
        model=network,
        tile=tile,
        tile_pad=10,
        pre_pad=0,
        half=half,
        device=device,
    )
    return lambda rgb: upsampler.enhance(rgb[:, :, ::-1], outscale=scale)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--precisions", nargs="+", default=["auto"])
    parser.add_argument(
        "--megapixels", nargs="+", type=float, help="input sizes (default: 3 12 24 on a GPU)"
    )
    parser.add_argument(
        "--rrdb-megapixels", nargs="+", type=float, help="sizes for RRDBNet on the CPU"
    )
    parser.add_argument(
        "--compile",
        nargs="*",
        default=[],
        choices=COMPILE_MODES,
        help="also time AMP with the network compiled in these torch.compile modes",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--reference-tile",
        type=int,
        default=512,
        help="the baseline's --tile (0 = whole image, as the reference's default)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()

    device = resolve_device(args.device)
    on_gpu = device.type == "cuda"
    sizes = args.megapixels or ([3.0, 12.0, 24.0] if on_gpu else [0.25])
    rrdb_sizes = args.megapixels or args.rrdb_megapixels or ([3.0, 12.0] if on_gpu else [0.05])
    rows: list[Measurement] = []
    for name in args.networks:
        spec = NETWORKS[name]
        base_network, weights = load_network(name, spec)
        for precision in args.precisions:
            dtype = resolve_dtype(precision, device)
            label = (
                str(dtype).removeprefix("torch.").replace("float", "fp").replace("bfp16", "bf16")
            )
            ours = Upscaler(
                copy.deepcopy(base_network),
                spec,
                device=device,
                dtype=dtype,
                tiles=TileSettings(tile_px=None, tile_pad_px=10),
            )
            reference = ReferenceEnhancer(
                copy.deepcopy(base_network),
                spec.scale,
                device=device,
                half=dtype != torch.float32,
                tile=args.reference_tile,
                tile_pad=10,
                pre_pad=0,
            )
            if dtype == torch.bfloat16:
                reference.network = reference.network.to(torch.bfloat16)
            engines = {"amp": (lambda rgb, u=ours: enhance_pixels(rgb, u), "auto")}
            for mode in args.compile:
                compiled = Upscaler(
                    copy.deepcopy(base_network),
                    spec,
                    device=device,
                    dtype=dtype,
                    tiles=ours.tiles,
                    compile_mode=mode,
                )
                engines[f"amp+compile:{mode}"] = (
                    lambda rgb, u=compiled: enhance_pixels(rgb, u),
                    "auto",
                )
            engines["reference-algorithm"] = (reference.enhance, str(args.reference_tile))
            real = real_realesrgan(
                copy.deepcopy(base_network),
                spec.scale,
                device,
                dtype == torch.float16,
                args.reference_tile,
            )
            if real is not None:
                engines["realesrgan"] = (real, str(args.reference_tile))
            for megapixels in sizes if spec.arch == "SRVGGNetCompact" else rrdb_sizes:
                image = photo_of(megapixels)
                mp = image.shape[0] * image.shape[1] / 1e6
                for engine, (run, tile) in engines.items():
                    if not engine.startswith("amp") and dtype == torch.bfloat16:
                        continue  # the reference offers fp32 and fp16 only
                    times, extra = timed(run, image, args.repeat, device)
                    seconds = statistics.median(times)
                    flops = spec.flops_per_input_pixel * mp * 1e6 / seconds
                    peak = peak_flops(device, label)
                    rows.append(
                        Measurement(
                            name,
                            weights,
                            label,
                            round(mp, 3),
                            engine,
                            tile,
                            extra.pop("first_run_seconds"),
                            seconds,
                            mp / seconds,
                            1 / seconds,
                            flops / 1e12,
                            flops / peak if peak else None,
                            **extra,
                        )
                    )
                    print(
                        f"{name:22s} {label:5s} {mp:6.2f} MP {engine:20s} {mp / seconds:8.3f} MP/s "
                        f"{flops / 1e12:7.3f} TFLOP/s",
                        flush=True,
                    )
    write_results(rows, device, args)


def write_results(rows: list[Measurement], device: torch.device, args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    ratios = []
    for row in rows:
        for other in rows:
            if (
                _compared(row.engine, other.engine)
                and other.network == row.network
                and other.precision == row.precision
                and other.megapixels == row.megapixels
            ):
                ratios.append(
                    {
                        "network": row.network,
                        "precision": row.precision,
                        "megapixels": row.megapixels,
                        "engine": row.engine,
                        "versus": other.engine,
                        "speedup": row.megapixels_per_s / other.megapixels_per_s,
                    }
                )
    document = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
            "cpu_cores": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "flops_per_input_pixel": {
            name: spec.flops_per_input_pixel for name, spec in NETWORKS.items()
        },
        "peak_flops_used": dict(PEAK_FLOPS),
        "measurements": [asdict(r) for r in rows],
        "speedups": ratios,
    }
    stem = f"enhance-{device.type}"
    (args.out / f"{stem}.json").write_text(json.dumps(document, indent=2) + "\n")
    plot(rows, args.out / f"{stem}.png", document["machine"]["device"])
    for ratio in ratios:
        print(
            f"speed-up {ratio['network']} {ratio['precision']} {ratio['megapixels']} MP "
            f"{ratio['engine']} vs {ratio['versus']}: {ratio['speedup']:.2f}x"
        )
    print(f"wrote {args.out / stem}.json and .png")


def _compared(engine: str, other: str) -> bool:
    """Each AMP variant against each baseline; compiled AMP also against eager AMP."""
    baseline = not other.startswith("amp")
    return engine.startswith("amp") and (baseline or (engine != "amp" and other == "amp"))


def plot(rows: list[Measurement], path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r.network, r.precision, r.megapixels) for r in rows})
    engines = sorted({r.engine for r in rows})
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups)), 4.5))
    width = 0.8 / len(engines)
    for i, engine in enumerate(engines):
        values = [
            next(
                (
                    r.megapixels_per_s
                    for r in rows
                    if (r.network, r.precision, r.megapixels) == g and r.engine == engine
                ),
                0.0,
            )
            for g in groups
        ]
        ax.bar([x + i * width for x in range(len(groups))], values, width, label=engine)
    ax.set_xticks([x + width * (len(engines) - 1) / 2 for x in range(len(groups))])
    ax.set_xticklabels([f"{n}\n{p} {mp:g} MP" for n, p, mp in groups], fontsize=7)
    ax.set_ylabel("input megapixels / s")
    ax.set_yscale("log")
    ax.set_title(f"Enhancement throughput on {device}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
