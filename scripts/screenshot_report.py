"""Render a cross-check report to HTML and screenshot it with headless Chromium.

    python scripts/screenshot_report.py                      # a small built-in example
    python scripts/screenshot_report.py --json report.json   # a report `reconcile` wrote

With --json, face crops are cut from the assets' local paths when the files exist. Writes
report.html and report.png into --out (default ./report-screenshot). Needs a Chromium
(`apt-get install chromium` on Debian).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.immich.crops import crop_face, to_data_uri_jpeg  # noqa: E402
from engine.immich.findings import (  # noqa: E402
    AmpFaceIn,
    AssetIn,
    ImmichFaceIn,
    PersonIn,
    ReconcileReport,
)
from engine.immich.reconcile import IMMICH_THRESHOLDS, reconcile  # noqa: E402
from engine.immich.report_html import render_report, required_crops  # noqa: E402

_COLOURS = [(214, 96, 77), (67, 147, 195), (90, 174, 97), (153, 112, 171), (223, 194, 125)]


def example() -> tuple[ReconcileReport, dict[str, np.ndarray]]:
    """A small library with one mistake of each kind; faces are drawn discs with a letter."""
    rng = np.random.default_rng(0)
    dim = 64
    centres = {k: rng.normal(size=dim) for k in "ABCX"}
    centres = {k: v / np.linalg.norm(v) for k, v in centres.items()}
    # Look-alikes: faces of Y and Z have similarity ~0.3 across, ~0.86 within.
    y = rng.normal(size=dim)
    centres["Y"] = y / np.linalg.norm(y)
    z = rng.normal(size=dim)
    z -= (z @ centres["Y"]) * centres["Y"]
    centres["Z"] = 0.35 * centres["Y"] + 0.94 * z / np.linalg.norm(z)
    people = [
        PersonIn("p-ann", "Ann"),
        PersonIn("p-bob", "Bob <script>alert(1)</script>"),
        PersonIn("p-cid", "Cid"),
        PersonIn("p-ann2", "Ann (again)"),
        PersonIn("p-unnamed", ""),
        PersonIn("p-twins", "Twins"),
    ]
    plan = [  # asset, identity letter, person id or None, in immich, in amp
        *[(f"a{n}", "A", "p-ann", True, True) for n in range(3)],
        *[(f"b{n}", "B", "p-bob", True, True) for n in range(3)],
        *[(f"c{n}", "C", "p-cid", True, True) for n in range(3)],
        ("c0", "A", "p-cid", True, True),  # reassign
        *[(f"d{n}", "A", "p-ann2", True, True) for n in range(2)],  # merge
        *[(f"e{n}", "B", "p-unnamed", True, True) for n in range(2)],  # unnamed -> Bob
        ("b0", "X", "p-bob", True, True),  # twice in one photo
        *[(f"y{n}", "Y", "p-twins", True, True) for n in range(2)],  # look-alikes merged
        *[(f"z{n}", "Z", "p-twins", True, True) for n in range(2)],
        ("a0", "C", None, False, True),  # missed by Immich
        ("a1", None, None, True, False),  # only in Immich
    ]
    images: dict[str, Image.Image] = {}
    slots: dict[str, int] = {}
    assets, immich, amp = [], [], []
    for asset_id, who, person, in_immich, in_amp in plan:
        if asset_id not in images:
            images[asset_id] = Image.new("RGB", (1200, 400), (236, 238, 242))
            assets.append(AssetIn(asset_id, 1200, 400))
        slot = slots.get(asset_id, 0)
        slots[asset_id] = slot + 1
        box = (100.0 + 400 * slot, 80.0, 300.0 + 400 * slot, 320.0)
        draw = ImageDraw.Draw(images[asset_id])
        colour = _COLOURS["ABCXYZ".find(who) % len(_COLOURS)] if who else (180, 180, 180)
        draw.ellipse(box, fill=colour)
        draw.text((box[0] + 90, box[1] + 110), who or "?", fill=(255, 255, 255))
        if in_immich:
            immich.append(ImmichFaceIn(f"{asset_id}-{slot}", asset_id, person, box))
        if in_amp and who:
            noise = rng.normal(size=dim)
            emb = 0.93 * centres[who] + 0.37 * noise / np.linalg.norm(noise)
            amp.append(AmpFaceIn(len(amp) + 1, asset_id, box, emb))
    report = reconcile(assets, people, immich, amp, IMMICH_THRESHOLDS, recognizer="example")
    return report, {k: np.asarray(v) for k, v in images.items()}


def cut_crops(report: ReconcileReport, images: dict[str, np.ndarray]) -> dict[str, str]:
    crops = {}
    for key, (asset_id, box) in required_crops(report).items():
        if asset_id in images:
            crops[key] = to_data_uri_jpeg(crop_face(images[asset_id], box))
    return crops


def images_from_paths(report: ReconcileReport) -> dict[str, np.ndarray]:
    from engine.faces.pixels import as_rgb8
    from engine.io.decode import read_image

    wanted = {asset_id for asset_id, _ in required_crops(report).values()}
    images = {}
    for asset in report.assets:
        if asset.asset_id in wanted and asset.path and Path(asset.path).is_file():
            images[asset.asset_id] = as_rgb8(read_image(Path(asset.path)).pixels)
    return images


def screenshot(html_path: Path, png_path: Path, chromium: str, size: str) -> None:
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={png_path}",
            f"--window-size={size}",
            html_path.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="a report written by reconcile (to_dict)")
    parser.add_argument("--out", type=Path, default=Path("report-screenshot"))
    parser.add_argument("--immich-url", default="http://immich.local:2283")
    parser.add_argument("--window-size", default="1400,1800", help="width,height in px")
    parser.add_argument("--chromium", default=None, help="the browser binary")
    args = parser.parse_args()

    if args.json:
        report = ReconcileReport.from_dict(json.loads(args.json.read_text()))
        images = images_from_paths(report)
    else:
        report, images = example()
    args.out.mkdir(parents=True, exist_ok=True)
    html_path = args.out / "report.html"
    html_path.write_text(
        render_report(report, cut_crops(report, images), immich_web_url=args.immich_url),
        encoding="utf-8",
    )
    chromium = args.chromium or next(
        (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
    )
    if chromium is None:
        print(f"wrote {html_path}; no Chromium found for the screenshot", file=sys.stderr)
        return 1
    png_path = args.out / "report.png"
    screenshot(html_path, png_path, chromium, args.window_size)
    print(png_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
