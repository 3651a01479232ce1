"""Fixtures for the face tests: the real detectors on ../shared weights, the real photos, and
a tiny ArcFace-shaped ONNX model (official ArcFace weights cannot be downloaded here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import insightface
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.faces.dlib_recognizer import DlibRecognizer
from engine.faces.factory import DetectorConfig, build_detector, build_dlib
from engine.faces.scrfd import ScrfdDetector
from engine.faces.yunet import YuNetDetector

INSIGHTFACE_IMAGES = Path(insightface.__file__).parent / "data" / "images"


@pytest.fixture(scope="session")
def t1_jpg() -> Path:
    """insightface's own test photo: six people in a row."""
    path = INSIGHTFACE_IMAGES / "t1.jpg"
    assert path.is_file(), f"{path} is missing from the insightface wheel"
    return path


def _shared_model(faces_dir: Path, relative: str) -> Path:
    """A file from ../shared/models (found next to the `faces_dir` fixture's folder); its
    absence is a broken checkout, never a reason to skip."""
    path = faces_dir.parent / "models" / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: tests need the shared weights")
    return path


@pytest.fixture(scope="session")
def scrfd_2_5g_file(faces_dir: Path) -> Path:
    """SCRFD-2.5G with keypoints, a real re-export (fixed 640x640 input, outputs out0..out8)."""
    return _shared_model(faces_dir, "unofficial/scrfd_2.5g_kps.hpc203-reexport.onnx")


@pytest.fixture(scope="session")
def scrfd_500m_file(faces_dir: Path) -> Path:
    return _shared_model(faces_dir, "unofficial/scrfd_500m_kps.hpc203-reexport.onnx")


@pytest.fixture(scope="session")
def yunet_file(faces_dir: Path) -> Path:
    """The official YuNet 2023mar release file."""
    return _shared_model(faces_dir, "face_detection_yunet_2023mar.onnx")


@pytest.fixture(scope="session")
def scrfd(scrfd_2_5g_file: Path) -> ScrfdDetector:
    """SCRFD-2.5G at Immich's defaults (det_thresh 0.7, NMS 0.4, 640 px)."""
    detector = build_detector(DetectorConfig(kind="scrfd", model=str(scrfd_2_5g_file)))
    assert isinstance(detector, ScrfdDetector)
    return detector


@pytest.fixture(scope="session")
def scrfd_500m(scrfd_500m_file: Path) -> ScrfdDetector:
    detector = build_detector(DetectorConfig(kind="scrfd", model=str(scrfd_500m_file)))
    assert isinstance(detector, ScrfdDetector)
    return detector


@pytest.fixture(scope="session")
def yunet(yunet_file: Path) -> YuNetDetector:
    """YuNet 2023mar at the manifest's defaults (score 0.9, NMS 0.3, 640 px)."""
    detector = build_detector(DetectorConfig(kind="yunet", model=str(yunet_file)))
    assert isinstance(detector, YuNetDetector)
    return detector


@pytest.fixture(scope="session")
def dlib_recognizer() -> DlibRecognizer:
    return build_dlib()


@pytest.fixture(scope="session")
def person_photos(faces_dir: Path) -> list[tuple[str, Path]]:
    """(person, photo) for every single-person photo in ../shared/faces."""
    photos = sorted(
        (p.parent.name, p) for p in faces_dir.glob("*/*.jpg") if p.parent.name != "_groups"
    )
    assert len(photos) == 22 and len({who for who, _ in photos}) == 8
    return photos


TinyModelFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def tiny_arcface(tmp_path_factory: pytest.TempPathFactory) -> TinyModelFactory:
    """Writes a small ONNX model with ArcFace's signature: input `input.1` [N, 3, 112, 112]
    float32, one output [N, dim]. A strided convolution with random weights makes the output
    depend on where each pixel is and on its channel, so a misaligned crop or swapped RGB/BGR
    order changes the embedding."""

    def make(batch: int | str = "N", dim: int = 512, name: str = "tiny_arcface") -> Path:
        rng = np.random.default_rng(7)
        conv_w = rng.normal(0, 0.1, (4, 3, 8, 8)).astype(np.float32)
        fc_w = rng.normal(0, 0.1, (4 * 14 * 14, dim)).astype(np.float32)
        graph = helper.make_graph(
            [
                helper.make_node(
                    "Conv", ["input.1", "conv_w"], ["c"], name="Conv_0", strides=[8, 8]
                ),
                helper.make_node("Flatten", ["c"], ["f"], name="Flatten_1"),
                helper.make_node("MatMul", ["f", "fc_w"], ["embedding"], name="MatMul_2"),
            ],
            "tiny_arcface",
            [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, 3, 112, 112])],
            [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, dim])],
            initializer=[
                numpy_helper.from_array(conv_w, "conv_w"),
                numpy_helper.from_array(fc_w, "fc_w"),
            ],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 9
        onnx.checker.check_model(model)
        path = tmp_path_factory.mktemp("models") / f"{name}.onnx"
        onnx.save(model, str(path))
        return path

    return make
