"""SCRFD and YuNet on real photos: counts, landmark order, tiling, reduced decode, EXIF."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.faces.boxes import iou_xyxy
from engine.faces.pipeline import detect_file
from engine.faces.reduced_decode import read_reduced
from engine.faces.scrfd import ScrfdDetector
from engine.faces.tiling import TileOptions, detect_tiled
from engine.faces.types import DetectedFace
from engine.faces.yunet import YuNetDetector
from engine.io.decode import read_image

SOLVAY = "_groups/solvay_conference_1927.jpg"


def matched(a: list[DetectedFace], b: list[DetectedFace], min_iou: float = 0.5) -> int:
    """How many faces of `a` have a face in `b` overlapping it by at least `min_iou`."""
    return sum(any(iou_xyxy(f.box_xyxy, g.box_xyxy) >= min_iou for g in b) for f in a)


def test_t1_has_six_faces_with_scrfd(
    t1_jpg: Path, scrfd: ScrfdDetector, scrfd_500m: ScrfdDetector
) -> None:
    for detector in (scrfd, scrfd_500m):
        faces = detect_file(t1_jpg, detector).faces
        assert len(faces) == 6
        assert all(f.score >= 0.7 and f.detector == detector.name for f in faces)


def test_t1_yunet_finds_four_at_640_and_all_six_tiled(
    t1_jpg: Path, yunet: YuNetDetector, scrfd: ScrfdDetector
) -> None:
    # At the manifest defaults (640 px, score 0.9) the two faces furthest back score below
    # 0.9; at full resolution (one 1280 px image, tiled at 640) all six pass.
    single = detect_file(t1_jpg, yunet).faces
    tiled = detect_file(t1_jpg, yunet, tiles=TileOptions()).faces
    assert len(single) == 4 and len(tiled) == 6
    assert matched(tiled, detect_file(t1_jpg, scrfd).faces) == 6


def test_landmarks_are_image_left_first_for_both_detectors(
    t1_jpg: Path, scrfd: ScrfdDetector, yunet: YuNetDetector
) -> None:
    image = read_image(t1_jpg).pixels
    for faces in (scrfd.detect(image), yunet.detect(image)):
        for f in faces:
            (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = f.landmarks_xy
            x1, y1, x2, y2 = f.box_xyxy
            assert lex < nx < rex and lmx < rmx  # left eye / mouth corner on the image's left
            assert max(ley, rey) < ny < min(lmy, rmy)  # eyes above nose above mouth
            assert x1 <= lex and rex <= x2 and y1 <= ley and rmy <= y2


def test_yunet_and_scrfd_agree_on_the_same_faces(
    faces_dir: Path, scrfd: ScrfdDetector, yunet: YuNetDetector
) -> None:
    for name in ("_groups/two_people.jpg", "_groups/obama_and_biden.jpg"):
        a, b = (
            detect_file(faces_dir / name, scrfd).faces,
            detect_file(faces_dir / name, yunet).faces,
        )
        assert len(a) == len(b) == matched(a, b)


def test_every_single_person_photo_has_one_face_with_yunet(
    person_photos: list[tuple[str, Path]], yunet: YuNetDetector
) -> None:
    counts = {p.name: len(detect_file(p, yunet).faces) for _, p in person_photos}
    assert counts == {name: 1 for name in counts}


def test_every_single_person_photo_has_one_face_with_scrfd_except_one(
    person_photos: list[tuple[str, Path]], scrfd: ScrfdDetector, scrfd_2_5g_file: Path
) -> None:
    # Known miss, not hidden by a lower default: SCRFD-2.5G scores paul_allen3.jpg's face
    # (a large, tilted face) 0.67, under Immich's 0.7. At 0.6 every photo has its one face.
    counts = {p.name: len(detect_file(p, scrfd).faces) for _, p in person_photos}
    assert {n: c for n, c in counts.items() if c != 1} == {"paul_allen3.jpg": 0}
    lenient = ScrfdDetector(
        scrfd._model.session, model_file=scrfd_2_5g_file, name=scrfd.name, det_thresh=0.6
    )
    assert all(len(detect_file(p, lenient).faces) == 1 for _, p in person_photos)


@pytest.mark.parametrize("detector_name", ["scrfd", "scrfd_500m"])
def test_solvay_has_29_faces_and_tiling_keeps_them(
    faces_dir: Path, detector_name: str, request: pytest.FixtureRequest
) -> None:
    detector: ScrfdDetector = request.getfixturevalue(detector_name)
    single = detect_file(faces_dir / SOLVAY, detector)
    tiled = detect_file(faces_dir / SOLVAY, detector, tiles=TileOptions())
    assert (single.width, single.height) == (3000, 2171)
    assert len(single.faces) == 29
    assert len(tiled.faces) >= len(single.faces)
    assert matched(single.faces, tiled.faces) == 29


def test_yunet_needs_tiles_for_solvay(
    faces_dir: Path, yunet: YuNetDetector, scrfd: ScrfdDetector
) -> None:
    # 29 faces ~85 px wide in a 3000 px photo are ~18 px at 640: too small for YuNet at 0.9.
    single = detect_file(faces_dir / SOLVAY, yunet).faces
    tiled = detect_file(faces_dir / SOLVAY, yunet, tiles=TileOptions()).faces
    assert len(single) <= 2 and len(tiled) >= 20
    assert matched(tiled, detect_file(faces_dir / SOLVAY, scrfd).faces) == len(tiled)


def test_only_the_tiled_pass_finds_a_small_face_in_a_large_photo(
    faces_dir: Path, scrfd: ScrfdDetector
) -> None:
    portrait = read_image(faces_dir / "barack_obama/obama.jpg").pixels
    (face,) = scrfd.detect(portrait)
    x1, y1, x2, y2 = (round(v) for v in face.box_xyxy)
    pad = (x2 - x1) // 2
    crop = portrait[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad]
    small = cv2.resize(
        crop,
        (crop.shape[1] * 60 // (x2 - x1), crop.shape[0] * 60 // (x2 - x1)),
        interpolation=cv2.INTER_AREA,
    )  # the face ~60 px wide
    canvas = np.full((4000, 6000, 3), 128, np.uint8)
    canvas[2100 : 2100 + small.shape[0], 3300 : 3300 + small.shape[1]] = small
    assert scrfd.detect(canvas) == []  # ~6 px at 640: invisible to the global pass
    (found,) = detect_tiled(scrfd, canvas, TileOptions())
    fx1, fy1, fx2, fy2 = found.box_xyxy
    assert 3300 < fx1 < fx2 < 3300 + small.shape[1] and 2100 < fy1 < fy2 < 2100 + small.shape[0]


def test_reduced_decode_is_a_dct_scaled_jpeg(faces_dir: Path) -> None:
    reduced = read_reduced(faces_dir / SOLVAY, 640)
    assert reduced.scale == 4.0 and reduced.pixels.shape == (543, 750, 3)
    assert (reduced.full_width, reduced.full_height) == (3000, 2171)
    small = read_reduced(faces_dir / "paul_allen/paul_allen.jpg", 640)  # 600 px: kept whole
    assert small.scale == 1.0 and small.pixels.shape[:2] == (591, 600)


@pytest.mark.parametrize(
    ("detector_name", "photo"),
    [
        ("scrfd", SOLVAY),
        ("scrfd", "_groups/obama_and_biden.jpg"),
        ("yunet", "_groups/obama_and_biden.jpg"),
    ],
)
def test_reduced_decode_agrees_with_full_decode(
    faces_dir: Path, detector_name: str, photo: str, request: pytest.FixtureRequest
) -> None:
    detector = request.getfixturevalue(detector_name)
    path = faces_dir / photo
    reduced = read_reduced(path, 640)
    assert reduced.scale > 1
    from_reduced = detect_file(path, detector)
    from_full = detector.detect(read_image(path).pixels)
    assert len(from_reduced.faces) == len(from_full) > 0
    # a few pixels at the detector's 640 px scale: the two decodes differ only in rounding
    tolerance = 3 * max(from_reduced.width, from_reduced.height) / 640
    for f in from_full:
        g = max(from_reduced.faces, key=lambda r: iou_xyxy(f.box_xyxy, r.box_xyxy))
        assert np.abs(np.subtract(f.box_xyxy, g.box_xyxy)).max() < tolerance
        assert np.abs(f.landmarks_xy - g.landmarks_xy).max() < tolerance


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_maps_boxes_onto_the_upright_face(
    tmp_path: Path, faces_dir: Path, scrfd: ScrfdDetector, orientation: int
) -> None:
    path = faces_dir / "_groups/two_people.jpg"
    upright = detect_file(path, scrfd)
    # Store the pixels as a camera would (turned), with the tag that turns them back.
    stored = Image.open(path).transpose(
        {
            3: Image.Transpose.ROTATE_180,
            6: Image.Transpose.ROTATE_90,
            8: Image.Transpose.ROTATE_270,
        }[orientation]
    )
    exif = Image.Exif()
    exif[0x0112] = orientation
    tagged = tmp_path / f"o{orientation}.jpg"
    stored.save(tagged, quality=95, exif=exif.tobytes())
    turned = detect_file(tagged, scrfd)
    assert (turned.width, turned.height) == (upright.width, upright.height)
    assert len(turned.faces) == len(upright.faces) == 2
    for f in upright.faces:
        g = max(turned.faces, key=lambda t: iou_xyxy(f.box_xyxy, t.box_xyxy))
        assert iou_xyxy(f.box_xyxy, g.box_xyxy) > 0.8
        assert np.abs(f.landmarks_xy - g.landmarks_xy).max() < 10
