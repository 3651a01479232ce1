"""Pure geometry: mapping faces between pixel grids, NMS, tile grids, 5-point alignment."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from insightface.utils import face_align

from engine.errors import OptionError
from engine.faces.align import ARCFACE_TEMPLATE_112, align_face, arcface_matrix
from engine.faces.boxes import clip_face, iou_xyxy, map_face, nms_faces
from engine.faces.reduced_decode import draft_request, upright_size
from engine.faces.scrfd import letterbox_size
from engine.faces.tiling import TileOptions, tile_grid, tile_starts, touches_inner_edge
from engine.faces.types import DetectedFace
from engine.faces.yunet import faces_from_yunet, resized_size

# scikit-image 0.26 deprecated the call insightface's reference alignment makes.
SKIMAGE_ESTIMATE = "ignore:`estimate` is deprecated:FutureWarning"


def face(box: tuple[float, float, float, float], score: float = 0.9) -> DetectedFace:
    x1, y1, x2, y2 = box
    landmarks = np.array(
        [
            [x1 + 0.3 * (x2 - x1), y1 + 0.4 * (y2 - y1)],
            [x1 + 0.7 * (x2 - x1), y1 + 0.4 * (y2 - y1)],
            [x1 + 0.5 * (x2 - x1), y1 + 0.6 * (y2 - y1)],
            [x1 + 0.35 * (x2 - x1), y1 + 0.8 * (y2 - y1)],
            [x1 + 0.65 * (x2 - x1), y1 + 0.8 * (y2 - y1)],
        ],
        dtype=np.float32,
    )
    return DetectedFace(box, landmarks, score, "test")


def test_map_face_scales_then_offsets_box_and_landmarks() -> None:
    f = face((10, 20, 30, 50))
    mapped = map_face(f, scale_xy=(4.0, 2.0), offset_xy=(100.0, 7.0))
    assert mapped.box_xyxy == (140.0, 47.0, 220.0, 107.0)
    np.testing.assert_allclose(mapped.landmarks_xy, f.landmarks_xy * [4, 2] + [100, 7])
    assert mapped.landmarks_xy.dtype == np.float32
    assert (mapped.score, mapped.detector) == (f.score, f.detector)


def test_iou_and_nms() -> None:
    assert iou_xyxy((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou_xyxy((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou_xyxy((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    a, b, c = face((0, 0, 10, 10), 0.8), face((1, 0, 11, 10), 0.9), face((50, 50, 60, 60), 0.7)
    assert nms_faces([a, b, c], 0.4) == [b, c]
    assert nms_faces([a, b, c], 0.9) == [b, a, c]


def test_clip_face_keeps_landmarks() -> None:
    f = face((-5, -3, 50, 70))
    clipped = clip_face(f, 40, 60)
    assert clipped.box_xyxy == (0.0, 0.0, 40.0, 60.0)
    np.testing.assert_array_equal(clipped.landmarks_xy, f.landmarks_xy)


@pytest.mark.parametrize("length", [1, 639, 640, 641, 1000, 2171, 3000, 6000])
def test_tiles_cover_the_image_with_the_overlap(length: int) -> None:
    starts = tile_starts(length, 640, 160)
    ends = [min(s + 640, length) for s in starts]
    assert starts[0] == 0 and ends[-1] == length
    for (s0, e0), s1 in zip(zip(starts, ends, strict=True), starts[1:], strict=False):
        assert e0 - s1 >= 160  # neighbours overlap by at least overlap_px
        assert s1 > s0


def test_tile_grid_and_inner_edges() -> None:
    tiles = tile_grid(1000, 700, TileOptions(tile_px=640, overlap_px=160))
    assert tiles == [(0, 0, 640, 640), (360, 0, 1000, 640), (0, 60, 640, 700), (360, 60, 1000, 700)]
    tile = (360, 0, 1000, 640)
    assert touches_inner_edge((361, 100, 400, 150), tile, 1000, 700)  # cut by the left edge
    assert touches_inner_edge((500, 600, 550, 640), tile, 1000, 700)  # cut by the bottom edge
    assert not touches_inner_edge((500, 0, 550, 50), tile, 1000, 700)  # the image's own top
    assert not touches_inner_edge((950, 100, 1000, 150), tile, 1000, 700)  # the image's right
    with pytest.raises(OptionError):
        TileOptions(tile_px=640, overlap_px=640)


def test_resize_arithmetic() -> None:
    assert letterbox_size(1280, 886, 640) == (640, 443)
    assert letterbox_size(910, 1137, 640) == (int(640 / (1137 / 910)), 640)
    assert resized_size(3000, 2171, 640) == (640, 463)
    assert draft_request(3000, 2171, 640) == (640, 463)
    assert draft_request(300, 200, 640) == (300, 200)  # never asks for more than there is
    assert upright_size(4000, 3000, 6) == (3000, 4000)
    assert upright_size(4000, 3000, 3) == (4000, 3000)


def test_yunet_rows_are_scaled_back() -> None:
    row = np.arange(15, dtype=np.float32)
    row[14] = 0.95
    (f,) = faces_from_yunet(row[None], (2.0, 3.0), "yunet:test")
    assert f.box_xyxy == (0.0, 3.0, 4.0, 12.0)  # x, y, x + w, y + h, scaled
    np.testing.assert_allclose(f.landmarks_xy[0], [8.0, 15.0])
    assert f.score == pytest.approx(0.95)


@pytest.mark.filterwarnings(SKIMAGE_ESTIMATE)
@pytest.mark.parametrize("size", [112, 128, 224])
def test_alignment_matrix_equals_insightface(size: int) -> None:
    rng = np.random.default_rng(size)
    for _ in range(10):
        angle = rng.uniform(-1.2, 1.2)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = ARCFACE_TEMPLATE_112 * rng.uniform(0.3, 6) + rng.normal(0, 2, (5, 2))
        landmarks = (points @ rotation.T + rng.uniform(0, 2000, 2)).astype(np.float32)
        ours = arcface_matrix(landmarks, size)
        reference = face_align.estimate_norm(landmarks, size)
        np.testing.assert_allclose(
            ours, reference, rtol=0, atol=1e-4 * max(1, abs(reference).max())
        )


def test_landmarks_on_the_template_give_the_identity() -> None:
    np.testing.assert_allclose(arcface_matrix(ARCFACE_TEMPLATE_112), np.eye(2, 3), atol=1e-5)


@pytest.mark.filterwarnings(SKIMAGE_ESTIMATE)
def test_aligned_crop_equals_norm_crop(t1_jpg, scrfd) -> None:  # type: ignore[no-untyped-def]
    bgr = cv2.imread(str(t1_jpg))
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    for f in scrfd.detect(rgb):
        ours = align_face(rgb, f.landmarks_xy)
        reference = cv2.cvtColor(face_align.norm_crop(bgr, f.landmarks_xy), cv2.COLOR_BGR2RGB)
        assert ours.shape == (112, 112, 3)
        # the matrices differ by float rounding only: at most one grey level on a few pixels
        difference = np.abs(ours.astype(int) - reference.astype(int))
        assert difference.max() <= 2 and (difference > 0).mean() < 0.02
