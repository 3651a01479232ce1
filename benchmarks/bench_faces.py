"""Face-stage throughput on this machine: decode (full vs JPEG draft), detect (SCRFD-2.5G,
SCRFD-500M, YuNet; single pass and tiled), embed (dlib at several batch sizes).

    .venv/bin/python benchmarks/bench_faces.py [--out benchmarks/results] [--repeat 2]

Writes faces.json and faces.png under --out. Uses ../shared (AMP_SHARED_DIR) photos and
models. ArcFace is not timed: the official w600k_r50.onnx cannot be downloaded here, and
the tiny test model says nothing about a ResNet-50's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import onnxruntime as ort  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.machine import cpu_model  # noqa: E402
from engine.faces.factory import (  # noqa: E402
    DetectorConfig,
    RecognizerConfig,
    build_detector,
    build_dlib,
)
from engine.faces.pixels import as_rgb8  # noqa: E402
from engine.faces.reduced_decode import read_reduced  # noqa: E402
from engine.faces.tiling import TileOptions, detect_tiled  # noqa: E402
from engine.io.decode import read_image  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AMP_SHARED_DIR", REPO.parent / "shared")).resolve()


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of `repeat` runs, in seconds (best, to discount other load)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    photos = sorted((SHARED / "faces").glob("*/*.jpg"))
    singles = [p for p in photos if p.parent.name != "_groups"]
    megapixels = sum(read_image(p).width * read_image(p).height for p in photos) / 1e6
    results: dict[str, object] = {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "providers_available": ort.get_available_providers(),
        },
        "photos": len(photos),
        "megapixels": round(megapixels, 1),
    }

    # decode
    full_s = timed(lambda: [read_image(p) for p in photos], args.repeat)
    draft_s = timed(lambda: [read_reduced(p, 640) for p in photos], args.repeat)
    results["decode_images_per_s"] = {
        "full": len(photos) / full_s,
        "draft_640": len(photos) / draft_s,
    }
    # a 24 MP camera-sized JPEG (the Solvay photo enlarged), where DCT scaling matters most
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "24mp.jpg"
        Image.open(SHARED / "faces/_groups/solvay_conference_1927.jpg").convert("RGB").resize(
            (6000, 4000)
        ).save(big, quality=92)
        results["decode_24mp_images_per_s"] = {
            "full": 1 / timed(lambda: read_image(big), args.repeat),
            "draft_640": 1 / timed(lambda: read_reduced(big, 640), args.repeat),
        }

    # detect, on pre-decoded images (640-px draft decodes; tiles on the full decode)
    shared_models = SHARED / "models"
    detectors = {
        "scrfd_2.5g": build_detector(
            DetectorConfig(
                kind="scrfd",
                model=str(shared_models / "unofficial/scrfd_2.5g_kps.hpc203-reexport.onnx"),
            )
        ),
        "scrfd_500m": build_detector(
            DetectorConfig(
                kind="scrfd",
                model=str(shared_models / "unofficial/scrfd_500m_kps.hpc203-reexport.onnx"),
            )
        ),
        "yunet_2023mar": build_detector(
            DetectorConfig(
                kind="yunet", model=str(shared_models / "face_detection_yunet_2023mar.onnx")
            )
        ),
    }
    reduced = [read_reduced(p, 640).pixels for p in photos]
    solvay = as_rgb8(read_image(SHARED / "faces/_groups/solvay_conference_1927.jpg").pixels)
    detect: dict[str, dict[str, float]] = {}
    for name, detector in detectors.items():
        detector.detect(reduced[0])  # warm-up: first run allocates
        seconds = timed(lambda d=detector: [d.detect(r) for r in reduced], args.repeat)
        tiled = timed(lambda d=detector: detect_tiled(d, solvay, TileOptions()), 1)
        detect[name] = {"images_per_s": len(reduced) / seconds, "solvay_tiled_s": tiled}
    results["detect"] = detect

    # embed: dlib over every single-person face, at several batch sizes (faces per call)
    scrfd = detectors["scrfd_2.5g"]
    items = []
    for p in singles:
        image = as_rgb8(read_image(p).pixels)
        items.append((image, scrfd.detect(image)))
    faces = sum(len(f) for _, f in items)
    embed: dict[str, float] = {}
    for batch in (1, 4, 16, 64):
        recognizer = build_dlib(RecognizerConfig(kind="dlib", batch_size=batch))
        seconds = timed(lambda r=recognizer: r.embed_batch(items), args.repeat)
        embed[str(batch)] = faces / seconds
    results["embed_dlib_faces_per_s"] = embed
    results["embed_faces"] = faces

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faces.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out / "faces.png")
    print(json.dumps(results, indent=2))


def plot(results: dict, path: Path) -> None:  # type: ignore[type-arg]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    decode = {f"{k} (25 photos)": v for k, v in results["decode_images_per_s"].items()}
    decode |= {f"{k} (24 MP)": v for k, v in results["decode_24mp_images_per_s"].items()}
    axes[0].bar(list(decode), list(decode.values()), color=["#888", "#4a7"] * 2)
    axes[0].set_yscale("log")
    axes[0].set_title("decode (images/s)")
    detect = results["detect"]
    axes[1].bar(list(detect), [v["images_per_s"] for v in detect.values()], color="#47a")
    axes[1].set_title("detect, 640-px input (images/s)")
    embed = results["embed_dlib_faces_per_s"]
    axes[2].plot([int(b) for b in embed], list(embed.values()), marker="o")
    axes[2].set_xscale("log", base=2)
    axes[2].set_ylim(bottom=0)
    axes[2].set_xlabel("faces per call")
    axes[2].set_title("dlib embed (faces/s)")
    machine = results["machine"]
    fig.suptitle(
        f"AMP faces on {machine['cores']} CPU cores, onnxruntime {machine['onnxruntime']} "
        f"({', '.join(machine['providers_available'])})"
    )
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=15)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
