"""`amp enhance` end to end: real files in, real files out, real exit codes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms
from typer.testing import CliRunner

from engine.cli.main import app

runner = CliRunner()
TEMPLATE = "year={year}/month={month}/{filename}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture
def inputs(tmp_path: Path, faces_dir: Path, srgb_icc: bytes) -> Path:
    """A folder like a NAS export: good photos of several kinds, and three broken files."""
    folder = tmp_path / "in"
    (folder / "nested").mkdir(parents=True)
    with Image.open(faces_dir / "paul_allen" / "paul_allen.jpg") as im:
        crop = im.convert("RGB").crop((250, 200, 298, 240))  # 48 x 40, stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    exif[0x010F] = "AMP test camera"
    exif.get_ifd(0x8769)[0x9003] = "2023:06:15 10:30:45"  # DateTimeOriginal
    crop.save(folder / "photo.jpg", exif=exif, icc_profile=srgb_icc, quality=95)

    deep = (np.asarray(crop, dtype=np.uint16) * 256 + 77)[:20, :24]
    cv2.imwrite(str(folder / "nested" / "deep.png"), deep[..., ::-1].copy())
    Image.fromarray(np.asarray(crop.convert("L"))[:16, :16]).save(folder / "grey.png")
    rgba = np.dstack([np.asarray(crop)[:16, :16], np.full((16, 16), 128, np.uint8)])
    Image.fromarray(rgba).save(folder / "nested" / "rgba.png")

    (folder / "empty.jpg").write_bytes(b"")
    good = (folder / "photo.jpg").read_bytes()
    (folder / "corrupt.jpg").write_bytes(good[: len(good) // 3])
    (folder / "fake.png").write_text("this is not an image\n")
    return folder


def _enhance(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["enhance", *args, "--json"])
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, document


def test_batch_enhances_good_files_reports_bad_ones_and_resumes(
    inputs: Path, tmp_path: Path, anime_weights: Path, srgb_icc: bytes
) -> None:
    out = tmp_path / "out"
    originals = {p: _sha256(p) for p in inputs.rglob("*") if p.is_file()}
    code, doc = _enhance(
        str(inputs), "--out", str(out), "--model", str(anime_weights), "--path-template", TEMPLATE
    )

    assert code == 1  # some files failed
    assert doc["summary"]["enhanced"] == 4 and doc["summary"]["failed"] == 3
    failed = {Path(f["source"]).name: f["error"] for f in doc["files"] if f["status"] == "failed"}
    assert set(failed) == {"empty.jpg", "corrupt.jpg", "fake.png"}
    assert all(failed.values())
    assert {p: _sha256(p) for p in originals} == originals  # originals untouched

    photo = out / "year=2023" / "month=06" / "photo.jpg"
    with Image.open(photo) as im:
        assert im.size == (160, 192)  # upright 40 x 48, x4
        assert im.info.get("icc_profile") == srgb_icc
        exif = im.getexif()
        assert exif.get(0x0112, 1) == 1  # pixels are upright now
        assert exif.get(0x010F) == "AMP test camera"
        assert exif.get_ifd(0x8769).get(0x9003) == "2023:06:15 10:30:45"

    deep = cv2.imread(str(next(out.rglob("deep.png"))), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (80, 96, 3) and deep.max() > 255
    assert cv2.imread(str(next(out.rglob("grey.png"))), cv2.IMREAD_UNCHANGED).shape == (64, 64)
    assert cv2.imread(str(next(out.rglob("rgba.png"))), cv2.IMREAD_UNCHANGED).shape == (64, 64, 4)
    assert not list(out.rglob("*.tmp*"))

    usage = doc["resource_usage"]
    assert usage["cpu_seconds"] > 0 and usage["peak_rss_mb"] > 0
    assert usage["storage_write_bytes"] == sum(
        p.stat().st_size for p in out.rglob("*") if p.is_file()
    )
    assert usage["storage_read_bytes"] > anime_weights.stat().st_size
    assert usage["gpu_utilization"] is None
    assert doc["stage_seconds"]["enhance"] > 0

    # A rerun resumes: everything already written is skipped and left as it was.
    mtime = photo.stat().st_mtime_ns
    code, doc = _enhance(
        str(inputs), "--out", str(out), "--model", str(anime_weights), "--path-template", TEMPLATE
    )
    assert code == 1 and doc["summary"]["skipped"] == 4 and doc["summary"]["enhanced"] == 0
    assert photo.stat().st_mtime_ns == mtime

    code, doc = _enhance(
        str(inputs / "photo.jpg"),
        "--out",
        str(out),
        "--model",
        str(anime_weights),
        "--path-template",
        TEMPLATE,
        "--overwrite",
        "--scale",
        "1.5",
    )
    assert code == 0 and doc["summary"]["enhanced"] == 1
    with Image.open(photo) as im:
        assert im.size == (60, 72)


def test_output_format_can_be_chosen(inputs: Path, tmp_path: Path, anime_weights: Path) -> None:
    code, _ = _enhance(
        str(inputs / "photo.jpg"),
        "--out",
        str(tmp_path / "o"),
        "--model",
        str(anime_weights),
        "--format",
        "png",
        "--scale",
        "2",
    )
    assert code == 0
    with Image.open(tmp_path / "o" / "photo.png") as im:
        assert im.format == "PNG" and im.size == (80, 96)


def test_path_template_cannot_escape_the_output_root(
    inputs: Path, tmp_path: Path, anime_weights: Path
) -> None:
    out = tmp_path / "out"
    for template in ("../{filename}", "/etc/{filename}", "{year}/../../{filename}"):
        code, doc = _enhance(
            str(inputs / "photo.jpg"),
            "--out",
            str(out),
            "--model",
            str(anime_weights),
            "--path-template",
            template,
        )
        assert code == 1
        assert doc["files"][0]["status"] == "failed"
    assert not (tmp_path / "photo.jpg").exists()
    assert not out.exists() or not list(out.rglob("*.jpg"))


def test_decompression_bomb_limit(inputs: Path, tmp_path: Path, anime_weights: Path) -> None:
    code, doc = _enhance(
        str(inputs / "photo.jpg"),
        "--out",
        str(tmp_path / "o"),
        "--model",
        str(anime_weights),
        "--max-pixels",
        "1000",
    )
    assert code == 1
    assert "decompression" in doc["files"][0]["error"]


def test_clear_errors_for_bad_invocations(tmp_path: Path, anime_weights: Path) -> None:
    missing = runner.invoke(app, ["enhance", str(tmp_path / "nope.jpg"), "--out", str(tmp_path)])
    assert missing.exit_code == 1 and "nope.jpg" in missing.stderr
    bad_model = runner.invoke(
        app, ["enhance", str(tmp_path), "--out", str(tmp_path), "--model", "no-such-model"]
    )
    assert bad_model.exit_code == 1
    (tmp_path / "a.png").write_bytes(
        cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    )
    bad_denoise = runner.invoke(
        app,
        [
            "enhance",
            str(tmp_path / "a.png"),
            "--out",
            str(tmp_path / "o"),
            "--model",
            str(anime_weights),
            "--denoise",
            "0.5",
        ],
    )
    assert bad_denoise.exit_code == 1 and "denoise" in bad_denoise.stderr


def test_help_explains_every_option() -> None:
    import typer.main

    command = typer.main.get_command(app).commands["enhance"]  # type: ignore[attr-defined]
    undocumented = [p.name for p in command.params if not getattr(p, "help", None)]
    assert undocumented == []
    result = runner.invoke(app, ["enhance", "--help"])
    assert result.exit_code == 0
    for option in (
        "--scale",
        "--denoise",
        "--model",
        "--tile",
        "--precision",
        "--device",
        "--path-template",
    ):
        assert option in result.stdout


def test_module_entry_point_and_usage_errors() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "engine", "--version"], capture_output=True, text=True
    )
    assert ok.returncode == 0 and ok.stdout.startswith("amp ")
    usage = subprocess.run(
        [sys.executable, "-m", "engine", "enhance", "--no-such-option"],
        capture_output=True,
        text=True,
    )
    assert usage.returncode == 2


def test_an_original_is_never_overwritten(inputs: Path, anime_weights: Path) -> None:
    photo = inputs / "photo.jpg"
    before = _sha256(photo)
    for extra in ([], ["--overwrite"]):
        code, doc = _enhance(
            str(photo), "--out", str(inputs), "--model", str(anime_weights), *extra
        )
        assert code == 1
        assert "never overwrites" in doc["files"][0]["error"]
    assert _sha256(photo) == before


def test_compiled_run_writes_the_eager_runs_pixels(
    inputs: Path, tmp_path: Path, anime_weights: Path
) -> None:
    common = [str(inputs / "photo.jpg"), "--model", str(anime_weights), "--format", "png"]
    code, eager = _enhance(*common, "--out", str(tmp_path / "eager"))
    assert code == 0
    code, compiled = _enhance(*common, "--out", str(tmp_path / "compiled"), "--compile", "default")
    assert code == 0 and compiled["settings"]["compile"] == "default"
    pixels = [
        np.asarray(Image.open(tmp_path / run / "photo.png"), dtype=np.int16)
        for run in ("eager", "compiled")
    ]
    assert np.abs(pixels[0] - pixels[1]).max() <= 1  # fused kernels may round one level apart

    bad = runner.invoke(
        app, ["enhance", str(inputs), "--out", str(tmp_path / "x"), "--compile", "fastest"]
    )
    assert bad.exit_code == 1 and "unknown --compile 'fastest'" in bad.stderr
    assert not (tmp_path / "x").exists()
