"""dlib's 128-d ResNet on the real photos: identities come out right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.faces.dlib_recognizer import DlibRecognizer
from engine.faces.factory import RecognizerConfig, build_dlib
from engine.faces.pipeline import analyze_file
from engine.faces.scrfd import ScrfdDetector
from engine.io.decode import read_image


@pytest.fixture(scope="module")
def lenient_scrfd(scrfd: ScrfdDetector, scrfd_2_5g_file: Path) -> ScrfdDetector:
    """SCRFD-2.5G at 0.6, the threshold at which every single-person photo has its face
    (see test_faces_detect); these tests are about embeddings, not about that one miss."""
    return ScrfdDetector(
        scrfd._model.session, model_file=scrfd_2_5g_file, name=scrfd.name, det_thresh=0.6
    )


@pytest.fixture(scope="module")
def gallery(
    person_photos: list[tuple[str, Path]],
    lenient_scrfd: ScrfdDetector,
    dlib_recognizer: DlibRecognizer,
) -> tuple[list[str], np.ndarray]:
    people, vectors = [], []
    for who, path in person_photos:
        result = analyze_file(path, lenient_scrfd, dlib_recognizer)
        assert result.embeddings is not None and result.embeddings.shape == (1, 128)
        assert result.recognizer == "dlib:resnet_v1"
        people.append(who)
        vectors.append(result.embeddings[0])
    return people, np.stack(vectors)


def test_every_photo_s_nearest_other_photo_is_the_same_person(
    gallery: tuple[list[str], np.ndarray],
) -> None:
    people, vectors = gallery
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = [people[j] for j in similarity.argmax(axis=1)]
    wrong = [(i, people[i], nearest[i]) for i in range(len(people)) if nearest[i] != people[i]]
    assert wrong == []


@pytest.mark.parametrize(
    ("photo", "adults"),
    [
        ("two_people.jpg", ["barack_obama", "joe_biden"]),
        ("obama_and_biden.jpg", ["barack_obama", "joe_biden"]),
    ],
)
def test_group_photos_adults_match_the_right_people(
    faces_dir: Path,
    gallery: tuple[list[str], np.ndarray],
    lenient_scrfd: ScrfdDetector,
    dlib_recognizer: DlibRecognizer,
    photo: str,
    adults: list[str],
) -> None:
    people, vectors = gallery
    result = analyze_file(faces_dir / "_groups" / photo, lenient_scrfd, dlib_recognizer)
    assert result.embeddings is not None
    # The adults are the two largest faces; obama_and_biden.jpg also has a small child.
    order = sorted(
        range(len(result.faces)),
        key=lambda i: result.faces[i].box_xyxy[0] - result.faces[i].box_xyxy[2],
    )
    matches = {}
    for i in order[:2]:
        similarity = vectors @ result.embeddings[i]
        matches[people[int(similarity.argmax())]] = float(similarity.max())
    assert sorted(matches) == adults
    assert min(matches.values()) > 0.95  # dlib distance < 0.32, well inside its 0.6 threshold
    if photo == "obama_and_biden.jpg":
        assert len(result.faces) == 3
        child = result.embeddings[order[2]]
        assert float((vectors @ child).max()) < min(matches.values())


def test_batch_api_equals_single_calls(
    faces_dir: Path, lenient_scrfd: ScrfdDetector, dlib_recognizer: DlibRecognizer
) -> None:
    images = [
        read_image(faces_dir / "_groups" / n).pixels
        for n in ("two_people.jpg", "obama_and_biden.jpg")
    ]
    faces = [lenient_scrfd.detect(i) for i in images]
    one_by_one = [dlib_recognizer.embed(i, f) for i, f in zip(images, faces, strict=True)]
    small_batches = build_dlib(RecognizerConfig(kind="dlib", batch_size=2))
    for batched in (
        dlib_recognizer.embed_batch(list(zip(images, faces, strict=True))),
        small_batches.embed_batch([(images[0], faces[0]), (images[0], []), (images[1], faces[1])]),
    ):
        batched = [b for b in batched if len(b)]
        for a, b in zip(one_by_one, batched, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
