"""Ray's overhead on one machine, and what 1M photos would take on N T4 workers.

    python benchmarks/bench_ray.py                    # 16 photos of 320x240, real anime model
    python benchmarks/bench_ray.py --photos 32 --width 480 --height 360

The same photos (real photos from ../shared/faces, centre-cropped and resized, JPEG q95) go
through the local engine (`run_batch`, one process, torch on every core) and through
`run_enhance_on_ray` on a local Ray with this machine's cores (one single-threaded actor per
core), with the real realesr-animevideov3 weights, at the same output scale. For each run:
wall time (model load included), the steady-state rate between the first and last result
(start-up excluded), and the per-stage seconds. Ray's wall time is split into starting Ray
and the run itself.

The estimate for 1M photos on N T4 workers uses only measured per-MP costs of the CPU stages
(decode, encode + write, scaled to the photo size), the measured Ray fixed cost and steady-
state overhead, and, for the network on a T4, the model's FLOPs per pixel and ONE EXPLICIT
ASSUMPTION: the fraction of the T4's fp16 tensor-core peak the network reaches (no T4 was
measured). Writes JSON and a PNG to benchmarks/results/ray.{json,png}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import cpu_model  # noqa: E402
from engine.distributed.ray_enhance import run_enhance_on_ray  # noqa: E402
from engine.distributed.ray_runtime import ray_session  # noqa: E402
from engine.enhance.batch import STAGES, BatchReport, EnhanceJob, FileResult, run_batch  # noqa: E402
from engine.enhance.models import load_enhancement_model  # noqa: E402
from engine.enhance.spec import NetworkSpec  # noqa: E402
from engine.enhance.upscaler import TileSettings, Upscaler  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AMP_SHARED_DIR", ROOT.parent / "shared")).resolve()
ANIME = SHARED / "models/unofficial/realesr-animevideov3.third-party-copy.pth"
RESULTS = ROOT / "benchmarks" / "results"
# realesr-general-x4v3, AMP's default model, for the estimate (its FLOPs per pixel).
GENERAL_X4V3 = NetworkSpec("SRVGGNetCompact", 4, num_feat=64, num_conv=32)
T4_FP16_PEAK_FLOPS = 65e12  # NVIDIA T4 data sheet, dense fp16 tensor cores


@dataclass
class Run:
    engine: str
    images: int
    input_megapixels: float
    wall_s: float  # model load + processing (Ray: after Ray is up)
    startup_s: float  # until the first result
    steady_images_per_s: float  # between the first and the last result
    stage_seconds: dict[str, float]
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "engine": self.engine,
            "images": self.images,
            "input_megapixels": round(self.input_megapixels, 4),
            "wall_s": round(self.wall_s, 3),
            "s_per_image": round(self.wall_s / self.images, 4),
            "megapixels_per_s": round(self.input_megapixels / self.wall_s, 5),
            "startup_s": round(self.startup_s, 3),
            "steady_images_per_s": round(self.steady_images_per_s, 4),
            "stage_seconds": {k: round(v, 4) for k, v in self.stage_seconds.items()},
            **self.extra,
        }


class Clock:
    """Times of each result's arrival, relative to `start`."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.arrivals: list[float] = []

    def __call__(self, result: FileResult) -> None:
        self.arrivals.append(time.perf_counter() - self.start)

    def steady_rate(self) -> float:
        first, last = self.arrivals[0], self.arrivals[-1]
        return (len(self.arrivals) - 1) / (last - first) if last > first else float("nan")


def make_photos(folder: Path, count: int, width: int, height: int) -> list[Path]:
    sources = sorted(p for p in (SHARED / "faces").rglob("*.jpg") if "_groups" not in p.parts)
    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for i in range(count):
        image = Image.open(sources[i % len(sources)]).convert("RGB")
        w, h = image.size
        side = min(w / width, h / height)
        box_w, box_h = width * side, height * side
        left, top = (w - box_w) / 2, (h - box_h) / 2
        image = image.resize(
            (width, height), Image.Resampling.LANCZOS, (left, top, left + box_w, top + box_h)
        )
        path = folder / f"photo{i:03d}.jpg"
        image.save(path, quality=95)
        photos.append(path)
    return photos


def run_local(photos: list[Path], out: Path, job: EnhanceJob) -> Run:
    clock = Clock()
    loaded = load_enhancement_model(str(ANIME))
    upscaler = Upscaler(
        loaded.network,
        loaded.spec,
        device=torch.device("cpu"),
        dtype=torch.float32,
        tiles=TileSettings(0),
    )
    report = run_batch(photos, upscaler, job, on_result=clock)
    return _run("local engine", report, clock)


def run_ray(photos: list[Path], job: EnhanceJob, actors: int | None = None) -> Run:
    clock = Clock()
    report = run_enhance_on_ray(
        photos,
        model=str(ANIME),
        denoise=None,
        device_spec="cpu",
        tiles=TileSettings(0),
        job=job,
        actors=actors,
        on_result=clock,
    )
    plan = report.plan
    name = "ray" if actors is None else f"ray, {actors} actor"
    run = _run(name, report, clock)
    run.extra = {
        "actors": plan.actors if plan else None,
        "torch_threads_per_actor": plan.torch_threads if plan else None,
        "nodes": [n.to_dict() for n in report.nodes],
        "actor_cpu_s": round(report.actor_cpu_s, 3),
    }
    return run


def _run(engine: str, report: BatchReport, clock: Clock) -> Run:
    wall = time.perf_counter() - clock.start
    assert report.count("enhanced") == len(report.results), "every photo must be enhanced"
    return Run(
        engine,
        len(report.results),
        report.enhanced_megapixels,
        wall,
        clock.arrivals[0],
        clock.steady_rate(),
        dict(report.stage_seconds),
    )


def estimate(
    runs: dict[str, Run],
    ray_init_s: float,
    *,
    photo_mp: float,
    outscale: float,
    worker_cores: int,
    mfu: float,
    photos_total: int,
    workers: list[int],
) -> dict[str, object]:
    """Wall time for `photos_total` photos on N T4 workers, from measured per-MP costs."""
    ray = runs["ray"]
    mp_in = ray.input_megapixels
    mp_out = mp_in * outscale**2
    # CPU stages on Ray's single-threaded actors: seconds per MP, measured.
    decode_s_per_mp = ray.stage_seconds["decode"] / mp_in
    encode_write_s_per_out_mp = (ray.stage_seconds["encode"] + ray.stage_seconds["write"]) / mp_out
    cpu_s = photo_mp * decode_s_per_mp + photo_mp * outscale**2 * encode_write_s_per_out_mp
    # ASSUMPTION (not measured): the network reaches `mfu` of the T4's fp16 peak.
    flops_px = GENERAL_X4V3.flops_per_input_pixel
    t4_mp_per_s = T4_FP16_PEAK_FLOPS * mfu / flops_px / 1e6
    gpu_s = photo_mp / t4_mp_per_s
    # The GPU and the worker's cores (decode ahead, encode behind) overlap: the slower bounds.
    per_image_s = max(gpu_s, cpu_s / worker_cores)
    # Ray's steady-state overhead on one machine: the local engine against Ray with the same
    # threads (one actor, torch on every core); a negative figure counts as none.
    same_threads = runs["ray, 1 actor"]
    overhead = max(
        0.0, runs["local engine"].steady_images_per_s / same_threads.steady_images_per_s - 1.0
    )
    fixed_s = ray_init_s + ray.startup_s
    rows = []
    for n in workers:
        seconds = fixed_s + photos_total * per_image_s * (1 + overhead) / n
        rows.append({"workers": n, "hours": round(seconds / 3600, 2), "seconds": round(seconds)})
    return {
        "photos": photos_total,
        "formula": (
            "T(N) = fixed_s + photos * max(gpu_s, cpu_s / worker_cores) * (1 + ray_overhead) / N"
        ),
        "measured": {
            "decode_s_per_input_mp": round(decode_s_per_mp, 5),
            "encode_write_s_per_output_mp": round(encode_write_s_per_out_mp, 5),
            "ray_fixed_s (ray start + first result)": round(fixed_s, 2),
            "ray_overhead (steady state, 1 actor vs local engine, >= 0)": round(overhead, 4),
        },
        "assumed": {
            "photo_megapixels": photo_mp,
            "outscale": outscale,
            "worker_cores (CPU cores per T4 worker for decode/encode)": worker_cores,
            "model": "realesr-general-x4v3 (SRVGG, 32 convs)",
            "flops_per_input_pixel": flops_px,
            "T4 fp16 peak FLOP/s": T4_FP16_PEAK_FLOPS,
            "ASSUMED model-FLOP utilisation on a T4 (not measured)": mfu,
        },
        "derived": {
            "t4_megapixels_per_s (assumed)": round(t4_mp_per_s, 3),
            "gpu_s_per_image": round(gpu_s, 3),
            "cpu_s_per_image (single core)": round(cpu_s, 3),
            "per_image_s_per_worker": round(per_image_s, 3),
            "bound": "GPU" if gpu_s >= cpu_s / worker_cores else "CPU (decode/encode)",
        },
        "wall_time": rows,
    }


def plot(runs: dict[str, Run], ray_init_s: float, est: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(runs)
    # Ray starts once, before its first run; the second run finds it up.
    init = {name: ray_init_s if name == "ray" else 0.0 for name in names}
    starts = [runs[n].startup_s + init[n] for n in names]
    rest = [runs[n].wall_s + init[n] - s for n, s in zip(names, starts, strict=True)]
    left.barh(names, starts, label="until the first result (incl. Ray start)")
    left.barh(names, rest, left=starts, label="the rest")
    left.set_xlabel("seconds")
    left.set_title(f"{runs['ray'].images} photos, this machine ({psutil.cpu_count()} cores)")
    left.legend(fontsize=8)
    rows = est["wall_time"]
    assert isinstance(rows, list)
    right.bar([str(r["workers"]) for r in rows], [r["hours"] for r in rows])
    right.set_xlabel("T4 workers")
    right.set_ylabel("hours")
    right.set_title("1M photos: estimate (T4 speed ASSUMED)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--outscale", type=float, default=2.0)
    parser.add_argument("--photo-megapixels", type=float, default=12.0, help="for the estimate")
    parser.add_argument("--worker-cores", type=int, default=4, help="CPU cores per T4 worker")
    parser.add_argument("--mfu", type=float, default=0.30, help="ASSUMED T4 utilisation")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="amp-bench-ray-"))
    try:
        photos = make_photos(work / "in", args.photos, args.width, args.height)
        job_local = EnhanceJob(out_root=work / "local", outscale=args.outscale)
        job_ray = EnhanceJob(out_root=work / "ray", outscale=args.outscale)
        runs = {"local engine": run_local(photos, work / "local", job_local)}
        t0 = time.perf_counter()
        with ray_session(None, num_cpus=os.cpu_count()):
            ray_init_s = time.perf_counter() - t0
            runs["ray"] = run_ray(photos, job_ray)
            # Same threads as the local engine (one process, torch on every core): what is
            # left of the difference is Ray's own cost.
            job_one = EnhanceJob(out_root=work / "ray1", outscale=args.outscale)
            runs["ray, 1 actor"] = run_ray(photos, job_one, actors=1)
        for photo in photos:  # same bytes, or the comparison means nothing
            local_bytes = (work / "local" / photo.name).read_bytes()
            assert local_bytes == (work / "ray" / photo.name).read_bytes()
            assert local_bytes == (work / "ray1" / photo.name).read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    local, ray, ray_one = runs["local engine"], runs["ray"], runs["ray, 1 actor"]
    est = estimate(
        runs,
        ray_init_s,
        photo_mp=args.photo_megapixels,
        outscale=args.outscale,
        worker_cores=args.worker_cores,
        mfu=args.mfu,
        photos_total=1_000_000,
        workers=[1, 4, 16],
    )
    document = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/bench_ray.py", *sys.argv[1:]]),
        "machine": {
            "device": cpu_model(),
            "cpu_cores": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "torch": torch.__version__,
            "ray": __import__("ray").__version__,
            "python": platform.python_version(),
        },
        "inputs": {
            "photos": args.photos,
            "size": [args.width, args.height],
            "model": "realesr-animevideov3 (real weights, SRVGG x4, 16 convs)",
            "outscale": args.outscale,
        },
        "outputs_identical": True,
        "runs": [run.to_dict() for run in runs.values()],
        "ray_init_s": round(ray_init_s, 3),
        "ratios": {
            "ray_total_over_local (incl. Ray start)": round(
                (ray.wall_s + ray_init_s) / local.wall_s, 3
            ),
            "ray_run_over_local (Ray already up)": round(ray.wall_s / local.wall_s, 3),
            "ray_1_actor_run_over_local (Ray already up)": round(ray_one.wall_s / local.wall_s, 3),
            "local_over_ray_1_actor_steady_rate": round(
                local.steady_images_per_s / ray_one.steady_images_per_s, 3
            ),
            "local_over_ray_steady_rate": round(
                local.steady_images_per_s / ray.steady_images_per_s, 3
            ),
        },
        "estimate_1M_photos_on_T4_workers": est,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray.json").write_text(json.dumps(document, indent=2) + "\n")
    plot(runs, ray_init_s, est, args.out / "ray.png")

    print(f"{args.photos} photos of {args.width}x{args.height}, outscale {args.outscale}")
    for run in runs.values():
        d = run.to_dict()
        print(
            f"  {run.engine:13s} wall {d['wall_s']:7.2f} s  {d['s_per_image']:.3f} s/image  "
            f"{d['megapixels_per_s']:.4f} MP/s  first result {d['startup_s']:.2f} s  "
            f"steady {d['steady_images_per_s']:.3f} img/s"
        )
    print(f"  Ray start {ray_init_s:.2f} s; ratios: {document['ratios']}")
    print(f"estimate, 1M photos: {est['formula']}")
    for key in ("measured", "assumed", "derived"):
        print(f"  {key}: {est[key]}")
    rows = est["wall_time"]
    assert isinstance(rows, list)
    for row in rows:
        print(f"  {row['workers']:>2} T4 workers: {row['hours']} h")
    print(f"wrote {args.out / 'ray.json'} and {args.out / 'ray.png'}")
    assert set(STAGES) == set(ray.stage_seconds)


if __name__ == "__main__":
    main()
