"""ArcFace preprocessing and batching against insightface's own ArcFaceONNX, on a tiny model
with ArcFace's input/output signature (the official w600k_r50 cannot be downloaded here)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from insightface.model_zoo.arcface_onnx import ArcFaceONNX
from insightface.utils import face_align

from engine.errors import OptionError, UnsupportedModelError
from engine.faces.arcface import ArcFaceRecognizer, input_normalisation, l2_normalise
from engine.faces.factory import first_node_names
from engine.faces.runtime import create_session
from engine.faces.scrfd import ScrfdDetector
from engine.faces.types import DetectedFace

SKIMAGE_ESTIMATE = "ignore:`estimate` is deprecated:FutureWarning"


def recognizer(path: Path, batch_size: int = 32) -> ArcFaceRecognizer:
    return ArcFaceRecognizer(
        create_session(path, ["cpu"]),
        name="arcface:tiny",
        first_node_names=first_node_names(path),
        batch_size=batch_size,
    )


@pytest.fixture(scope="module")
def t1_faces(t1_jpg: Path, scrfd: ScrfdDetector) -> tuple[np.ndarray, list[DetectedFace]]:
    rgb = cv2.cvtColor(cv2.imread(str(t1_jpg)), cv2.COLOR_BGR2RGB)
    faces = scrfd.detect(rgb)
    assert len(faces) == 6
    return rgb, faces


def test_normalisation_rule_matches_insightface() -> None:
    assert input_normalisation(["Conv_0", "Relu_1"]) == (127.5, 127.5)
    assert input_normalisation(["_minusscalar0", "_mulscalar0", "conv0"]) == (0.0, 1.0)
    assert input_normalisation(["Sub_0", "Mul_1"]) == (0.0, 1.0)
    assert input_normalisation(["Sub_0", "Conv_1"]) == (127.5, 127.5)  # both are needed


@pytest.mark.filterwarnings(SKIMAGE_ESTIMATE)
def test_embeddings_equal_insightface_arcfaceonnx(tiny_arcface, t1_faces) -> None:  # type: ignore[no-untyped-def]
    path = tiny_arcface()
    rgb, faces = t1_faces
    ours = recognizer(path)
    reference = ArcFaceONNX(model_file=str(path), session=create_session(path, ["cpu"]))
    assert (reference.input_mean, reference.input_std) == (ours.mean, ours.std) == (127.5, 127.5)

    # Same crops in: insightface takes BGR, AMP RGB; the numbers must agree to float precision.
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    crops_bgr = [face_align.norm_crop(bgr, f.landmarks_xy) for f in faces]
    expected = l2_normalise(reference.get_feat(crops_bgr))
    crops_rgb = np.stack([c[:, :, ::-1] for c in crops_bgr])
    np.testing.assert_allclose(ours.embed_crops(crops_rgb), expected, atol=1e-5)

    # End to end with AMP's own alignment: equal up to alignment rounding.
    embedded = ours.embed(rgb, faces)
    assert embedded.shape == (6, 512) and embedded.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, rtol=1e-5)
    assert np.min(np.sum(embedded * expected, axis=1)) > 0.999
    # ... and a channel swap would not pass: the model sees colour.
    swapped = ours.embed(rgb[:, :, ::-1], faces)
    assert np.min(np.sum(swapped * expected, axis=1)) < 0.999


@pytest.mark.parametrize("batch_size", [1, 4, 6, 32])
def test_batches_equal_one_by_one(tiny_arcface, t1_faces, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    rgb, faces = t1_faces
    ours = recognizer(tiny_arcface(), batch_size)
    one_by_one = np.concatenate([ours.embed(rgb, [f]) for f in faces])
    np.testing.assert_allclose(ours.embed(rgb, faces), one_by_one, atol=1e-5)
    # across images: the two halves as two "images", and an image without faces
    parts = ours.embed_batch([(rgb, faces[:2]), (rgb, []), (rgb, faces[2:])])
    assert [p.shape[0] for p in parts] == [2, 0, 4]
    np.testing.assert_allclose(np.concatenate(parts), one_by_one, atol=1e-5)


def test_fixed_batch_model_runs_chunk_by_chunk(tiny_arcface, t1_faces) -> None:  # type: ignore[no-untyped-def]
    rgb, faces = t1_faces
    fixed = recognizer(tiny_arcface(batch=1, name="fixed1"), batch_size=32)
    assert fixed.batch_size == 1
    dynamic = recognizer(tiny_arcface())
    np.testing.assert_allclose(fixed.embed(rgb, faces), dynamic.embed(rgb, faces), atol=1e-5)
    fixed4 = recognizer(tiny_arcface(batch=4, name="fixed4"))
    assert fixed4.batch_size == 4  # 6 faces: a full chunk, then one padded with zeros
    np.testing.assert_allclose(fixed4.embed(rgb, faces), dynamic.embed(rgb, faces), atol=1e-5)


def test_no_faces_and_bad_options(tiny_arcface) -> None:  # type: ignore[no-untyped-def]
    ours = recognizer(tiny_arcface(dim=128, name="d128"))
    assert ours.dim == 128
    assert ours.embed(np.zeros((50, 50, 3), np.uint8), []).shape == (0, 128)
    with pytest.raises(OptionError):
        recognizer(tiny_arcface(), batch_size=0)


def test_a_detector_is_not_an_arcface_model(scrfd_500m_file: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="one input and one output"):
        recognizer(scrfd_500m_file)
