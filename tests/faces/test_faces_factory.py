"""Choosing models by name: defaults, the auto fallbacks, and names that pin the weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.errors import ModelNotFoundError, OptionError
from engine.faces.arcface import ArcFaceRecognizer
from engine.faces.dlib_recognizer import DlibRecognizer
from engine.faces.factory import (
    DetectorConfig,
    RecognizerConfig,
    build_detector,
    build_recognizer,
    model_label,
)
from engine.faces.scrfd import ScrfdDetector
from engine.faces.yunet import YuNetDetector
from engine.registry.download import sha256_file
from engine.registry.manifest import load_manifest


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model directory as the only place searched besides the checkout's models/."""
    directory = tmp_path / "models"
    directory.mkdir()
    monkeypatch.setenv("AMP_MODELS_DIR", str(directory))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return directory


@pytest.fixture
def fake_buffalo_l(models_dir: Path, scrfd_2_5g_file: Path, tiny_arcface) -> Path:  # type: ignore[no-untyped-def]
    """A buffalo_l folder with working stand-ins: SCRFD-2.5G as det_10g.onnx, the tiny
    ArcFace-shaped model as w600k_r50.onnx, empty files for the members AMP does not use."""
    pack = models_dir / "buffalo_l"
    pack.mkdir()
    shutil.copy(scrfd_2_5g_file, pack / "det_10g.onnx")
    shutil.copy(tiny_arcface(), pack / "w600k_r50.onnx")
    for name in ("1k3d68.onnx", "2d106det.onnx", "genderage.onnx"):
        (pack / name).write_bytes(b"")
    return pack


def test_without_buffalo_l_auto_falls_back_to_yunet_and_dlib(
    models_dir: Path, yunet_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copy(yunet_file, models_dir / yunet_file.name)
    with caplog.at_level("INFO"):
        recognizer = build_recognizer(RecognizerConfig())
        detector = build_detector(DetectorConfig())
    assert isinstance(recognizer, DlibRecognizer) and recognizer.name == "dlib:resnet_v1"
    assert recognizer.dim == 128
    assert "buffalo_l not found" in caplog.text
    # the official YuNet file (its sha256 is the manifest's) gets the short name
    assert isinstance(detector, YuNetDetector) and detector.name == "yunet:2023mar"
    assert (detector.score_thresh, detector.nms_thresh, detector.input_px) == (0.9, 0.3, 640)


def test_missing_models_say_how_to_get_them(models_dir: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="amp models fetch buffalo_l"):
        build_detector(DetectorConfig(kind="scrfd"))
    with pytest.raises(ModelNotFoundError, match="face_detection_yunet_2023mar"):
        build_detector(DetectorConfig(kind="yunet"))
    with pytest.raises(ModelNotFoundError, match="amp models fetch buffalo_l"):
        build_recognizer(RecognizerConfig(kind="arcface"))


def test_with_buffalo_l_auto_uses_scrfd_and_arcface(fake_buffalo_l: Path) -> None:
    detector = build_detector(DetectorConfig())
    recognizer = build_recognizer(RecognizerConfig())
    assert isinstance(detector, ScrfdDetector) and isinstance(recognizer, ArcFaceRecognizer)
    # Not the official bytes, so the names carry the file's own sha256 prefix.
    det_sha = sha256_file(fake_buffalo_l / "det_10g.onnx")[:12]
    rec_sha = sha256_file(fake_buffalo_l / "w600k_r50.onnx")[:12]
    assert detector.name == f"scrfd:det_10g-{det_sha}"
    assert recognizer.name == f"arcface:w600k_r50-{rec_sha}"
    # Immich's settings from the manifest
    assert (detector.det_thresh, detector.nms_thresh, detector.input_px) == (0.7, 0.4, 640)
    assert recognizer.dim == 512


def test_official_bytes_get_the_official_name(scrfd_2_5g_file: Path) -> None:
    digest = sha256_file(scrfd_2_5g_file)
    assert model_label("scrfd", scrfd_2_5g_file, {digest: "det_10g.onnx"}) == "scrfd:det_10g"
    assert model_label("scrfd", scrfd_2_5g_file, {}) == (
        f"scrfd:scrfd_2.5g_kps.hpc203-reexport-{digest[:12]}"
    )
    official = {f.sha256 for e in load_manifest().models.values() for f in e.files}
    assert digest not in official  # the re-export is not det_10g


def test_options_are_checked(scrfd_2_5g_file: Path, models_dir: Path) -> None:
    with pytest.raises(OptionError, match="fixed 640px input"):
        build_detector(DetectorConfig(kind="scrfd", model=str(scrfd_2_5g_file), input_px=320))
    with pytest.raises(OptionError, match="det_thresh"):
        build_detector(DetectorConfig(kind="scrfd", model=str(scrfd_2_5g_file), det_thresh=1.5))
    with pytest.raises(OptionError, match="unknown ONNX Runtime provider"):
        build_detector(DetectorConfig(kind="scrfd", model=str(scrfd_2_5g_file), providers=("gpu",)))
    with pytest.raises(OptionError, match="unknown face detector"):
        build_detector(DetectorConfig(kind="mtcnn"))  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="num_jitters"):
        build_recognizer(RecognizerConfig(kind="dlib", num_jitters=0))
