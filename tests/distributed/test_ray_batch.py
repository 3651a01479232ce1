"""Batch jobs on a real local Ray (2 CPUs, started once for the module): the same bytes as the
local engine, resume, a worker killed mid-run, and the face index built from Ray's results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from PIL import Image

from engine.distributed.ray_enhance import run_enhance_on_ray
from engine.distributed.ray_index import run_index_on_ray
from engine.distributed.ray_runtime import CrashOnce, ray_session
from engine.enhance.batch import EnhanceJob, FileResult, run_batch
from engine.enhance.load import build_network, read_state_dict
from engine.enhance.upscaler import TileSettings, Upscaler
from engine.faces.factory import (
    DetectorConfig,
    RecognizerConfig,
    build_detector,
    build_recognizer,
)
from engine.index.indexer import IndexedFile, index_files
from engine.index.store import FaceIndex

PORTRAITS = [
    "alex_lacamoire/img1.jpg",
    "barack_obama/obama.jpg",
    "guido_van_rossum/guido_van_rossum1.jpg",
    "kit_harington/john1.jpg",
    "paul_allen/paul_allen.jpg",
    "steve_wozniak/steve_wozniak2.jpg",
]


@pytest.fixture(scope="module")
def scrfd_2_5g_file(faces_dir: Path) -> Path:
    """SCRFD-2.5G with keypoints from ../shared/models (a broken checkout if missing)."""
    path = faces_dir.parent / "models" / "unofficial" / "scrfd_2.5g_kps.hpc203-reexport.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: tests need the shared weights")
    return path


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray for every test here; the functions under test reuse it."""
    with ray_session(None, num_cpus=2):
        yield


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> list[Path]:
    """Six real photos cropped to 96x80 around their centre (the real model runs fast on
    them), JPEG and PNG, and one file that is not an image."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, relative in enumerate(PORTRAITS):
        image = Image.open(faces_dir / relative).convert("RGB")
        w, h = image.size
        crop = image.crop((w // 2 - 48, h // 2 - 40, w // 2 + 48, h // 2 + 40))
        path = folder / (f"p{i}.png" if i % 3 == 2 else f"p{i}.jpg")
        crop.save(path, quality=90)
        paths.append(path)
    broken = folder / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    return [*paths[:3], broken, *paths[3:]]


@pytest.fixture(scope="module")
def local_outputs(
    tmp_path_factory: pytest.TempPathFactory, small_photos: list[Path], anime_weights: Path
) -> tuple[Path, list[FileResult]]:
    """The local engine's outputs for `small_photos`: the reference."""
    out = tmp_path_factory.mktemp("local")
    network, spec = build_network(read_state_dict(anime_weights))
    upscaler = Upscaler(network, spec, device=torch.device("cpu"), dtype=torch.float32)
    report = run_batch(small_photos, upscaler, EnhanceJob(out_root=out))
    return out, report.results


def _enhance_on_ray(
    photos: list[Path], out: Path, weights: Path, **kwargs: object
) -> tuple[list[FileResult], list[FileResult], object]:
    arrived: list[FileResult] = []
    report = run_enhance_on_ray(
        photos,
        model=str(weights),
        denoise=None,
        device_spec="auto",
        tiles=TileSettings(tile_px=0),
        job=EnhanceJob(out_root=out),
        on_result=arrived.append,
        **kwargs,  # type: ignore[arg-type]
    )
    return report.results, arrived, report


def test_enhance_on_ray_writes_the_local_engines_bytes_and_resumes(
    tmp_path: Path,
    small_photos: list[Path],
    local_outputs: tuple[Path, list[FileResult]],
    anime_weights: Path,
) -> None:
    local_out, local_results = local_outputs
    results, arrived, report = _enhance_on_ray(small_photos, tmp_path, anime_weights)

    assert [r.source for r in results] == small_photos  # input order, like the local run
    assert sorted(map(str, (r.source for r in arrived))) == sorted(map(str, small_photos))
    assert [r.status for r in results] == [r.status for r in local_results]
    assert [r.error for r in results] == [r.error for r in local_results]  # the broken file
    for ours, theirs in zip(results, local_results, strict=True):
        assert ours.output_size == theirs.output_size
        if theirs.status == "enhanced":
            assert ours.output == tmp_path / theirs.source.name
            assert ours.output.read_bytes() == (local_out / theirs.source.name).read_bytes()
            assert set(ours.stage_seconds) == {"decode", "enhance", "encode", "write"}
    assert report.stage_seconds["enhance"] > 0
    assert report.write_bytes == sum(r.output.stat().st_size for r in results if r.output)
    [node] = report.nodes  # one machine: one node, both actors on it
    assert (node.files, node.done) == (7, 6) and 1 <= node.actors <= 2
    assert report.plan is not None and report.plan.torch_threads == 1
    assert (report.network, report.native_scale, report.denoise) == ("SRVGGNetCompact", 4, None)
    assert (report.device, report.precision) == ("cpu", "float32")

    again, _, _ = _enhance_on_ray(small_photos, tmp_path, anime_weights)
    assert [r.status for r in again] == ["skipped"] * 3 + ["failed"] + ["skipped"] * 3


def test_a_worker_killed_mid_run_still_completes_every_file_exactly_once(
    tmp_path: Path,
    small_photos: list[Path],
    local_outputs: tuple[Path, list[FileResult]],
    anime_weights: Path,
) -> None:
    local_out, _ = local_outputs
    photos = [p for p in small_photos if p.name != "broken.jpg"]
    marker = tmp_path / "killed.pid"
    out = tmp_path / "out"
    crash = CrashOnce(file_name=photos[3].name, marker=marker)
    results, arrived, _ = _enhance_on_ray(photos, out, anime_weights, crash=crash)

    killed_pid = int(marker.read_text())  # the hook did fire: that actor was SIGKILLed
    assert not psutil.pid_exists(killed_pid)
    assert sorted(str(r.source) for r in arrived) == sorted(map(str, photos))  # each once
    assert [r.source for r in results] == photos
    assert [r.status for r in results] == ["enhanced"] * len(photos)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in photos)
    for photo in photos:
        assert (out / photo.name).read_bytes() == (local_out / photo.name).read_bytes()


def test_faces_indexed_on_ray_equal_the_local_index(
    tmp_path: Path, faces_dir: Path, scrfd_2_5g_file: Path
) -> None:
    photos = [faces_dir / relative for relative in PORTRAITS[:5]]
    detector_config = DetectorConfig(kind="scrfd", model=str(scrfd_2_5g_file), det_thresh=0.6)
    recognizer_config = RecognizerConfig(kind="dlib")
    with FaceIndex(tmp_path / "local") as index:
        local = index_files(
            photos, index, build_detector(detector_config), build_recognizer(recognizer_config)
        )
    arrived: list[IndexedFile] = []
    with FaceIndex(tmp_path / "ray") as index:
        report = run_index_on_ray(
            photos,
            detector_config=detector_config,
            recognizer_config=recognizer_config,
            index=index,
            on_result=arrived.append,
        )
        rerun = run_index_on_ray(
            photos,
            detector_config=detector_config,
            recognizer_config=recognizer_config,
            index=index,
        )

    assert [r.status for r in report.results] == ["indexed"] * 5
    assert [r.faces for r in report.results] == [r.faces for r in local.results]
    assert report.faces >= 5
    assert len(arrived) == 5
    assert [r.status for r in rerun.results] == ["unchanged"] * 5  # settled on the driver
    assert rerun.plan is None  # ...without starting an actor
    recognizer = report.recognizer
    with (
        FaceIndex(tmp_path / "local", readonly=True) as a,
        FaceIndex(tmp_path / "ray", readonly=True) as b,
    ):
        assert a.stats().faces == b.stats().faces
        for photo in photos:
            assert a.asset(photo) == b.asset(photo)  # size, mtime, sha1, pixels, EXIF time
            ours, theirs = b.faces_of(photo), a.faces_of(photo)
            assert len(ours) == len(theirs)
            for x, y in zip(ours, theirs, strict=True):
                assert x.box_xyxy == y.box_xyxy and x.score == y.score
                assert np.array_equal(x.landmarks_xy, y.landmarks_xy)
            np.testing.assert_allclose(
                b.embeddings_of([f.face_id for f in ours], recognizer),
                a.embeddings_of([f.face_id for f in theirs], recognizer),
                atol=1e-5,
            )


def test_the_cli_runs_on_ray_and_reports_per_node_figures(
    tmp_path: Path, small_photos: list[Path], anime_weights: Path, local_outputs
) -> None:  # noqa: ANN001
    import json

    from typer.testing import CliRunner

    from engine.cli.main import app

    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "enhance",
            *map(str, small_photos),
            "--out",
            str(out),
            "--model",
            str(anime_weights),
            "--ray",
            "auto",
            "--json",
        ],
    )
    assert result.exit_code == 1  # the broken file failed, the rest were enhanced
    document = json.loads(result.stdout)
    assert document["summary"]["enhanced"] == 6 and document["summary"]["failed"] == 1
    assert document["nodes"] and document["settings"]["device"].startswith("ray")
    reference_dir, _ = local_outputs
    for produced in out.iterdir():
        assert produced.read_bytes() == (reference_dir / produced.name).read_bytes()
