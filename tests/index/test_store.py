"""FaceIndex: round trips, skip logic, replacement, recognizer isolation, readers, ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import IndexStoreError, InputError
from engine.index.store import FaceIndex, matrix_file_name

REC = "arcface:buffalo_l"
D = 16


def basis(*pairs: tuple[int, float]) -> np.ndarray:
    """A D-d vector from (axis, weight) pairs; the tests normalise where it matters."""
    v = np.zeros(D, dtype=np.float32)
    for axis, weight in pairs:
        v[axis] = weight
    return v


def cos_vec(axis: int, c: float, spare: int) -> np.ndarray:
    """A unit vector whose cosine with basis axis `axis` is exactly `c`."""
    return basis((axis, c), (spare, float(np.sqrt(1 - c * c))))


@pytest.fixture
def index(tmp_path: Path):
    with FaceIndex(tmp_path / "idx") as idx:
        yield idx


def test_round_trip(index: FaceIndex, make_asset, make_face, rng, make_unit) -> None:
    asset = make_asset("a.jpg")
    faces = [make_face(0), make_face(1)]
    emb = make_unit(rng, 2, D)
    asset_id = index.add_asset(asset, faces, emb, REC)
    assert index.asset(asset.path) == asset
    stored = index.faces_of(asset.path)
    assert [s.box_xyxy for s in stored] == [f.box_xyxy for f in faces]
    assert [s.detector for s in stored] == ["scrfd:test"] * 2
    assert [s.score for s in stored] == pytest.approx([f.score for f in faces])
    for s, f in zip(stored, faces, strict=True):
        np.testing.assert_array_equal(s.landmarks_xy, f.landmarks_xy)
        assert s.asset_id == asset_id and s.recognizer == REC
        assert s.immich_face_id is None and s.immich_person_id is None
    hit = index.search(emb[1], REC, k=1)[0]
    assert (hit.face_id, hit.asset_id, hit.path) == (stored[1].face_id, asset_id, asset.path)
    assert hit.box_xyxy == faces[1].box_xyxy and hit.score == pytest.approx(1.0, abs=1e-6)
    stats = index.stats()
    assert (stats.assets, stats.faces) == (1, 2)
    rec = stats.recognizers[REC]
    assert (rec.dim, rec.dtype, rec.faces, rec.rows, rec.dead_rows, rec.assets) == (
        D,
        "float32",
        2,
        2,
        0,
        1,
    )
    assert (index.root / matrix_file_name(REC)).is_file()


def test_search_order_and_batches(index: FaceIndex, make_asset, make_face, rng, make_unit) -> None:
    emb = make_unit(rng, 40, D)
    for i in range(10):
        index.add_asset(
            make_asset(f"{i}.jpg"), [make_face(j) for j in range(4)], emb[4 * i : 4 * i + 4], REC
        )
    q = make_unit(rng, 3, D)
    batch = index.search_batch(q, REC, k=7)
    assert [len(hits) for hits in batch] == [7, 7, 7]
    for qi, hits in enumerate(batch):
        single = index.search(q[qi], REC, k=7)
        # The same hits; scores may differ in the last bit (matrix-matrix vs matrix-vector).
        assert [h.face_id for h in hits] == [h.face_id for h in single]
        assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-6)
        expected = np.sort(emb @ q[qi])[::-1][:7]
        np.testing.assert_allclose([h.score for h in hits], expected, atol=1e-6)
    assert len(index.search(q[0], REC, k=100)) == 40


def test_embeddings_are_normalised_on_the_way_in(index: FaceIndex, make_asset, make_face) -> None:
    index.add_asset(make_asset("a.jpg"), [make_face()], basis((0, 3.0), (1, 4.0))[None], REC)
    hit = index.search(basis((0, 30.0), (1, 40.0)), REC)[0]
    assert hit.score == pytest.approx(1.0, abs=1e-6)


def test_recognizers_never_mix(index: FaceIndex, make_asset, make_face) -> None:
    other = "arcface:antelopev2"
    index.add_asset(make_asset("a.jpg"), [make_face()], cos_vec(0, 0.5, 1)[None], REC)
    # The other model's face is identical to the query: it must still never come back.
    index.add_asset(make_asset("b.jpg"), [make_face()], basis((0, 1.0))[None], other)
    hits = index.search(basis((0, 1.0)), REC, k=10)
    assert [h.path for h in hits] == ["/photos/a.jpg"]
    assert hits[0].score == pytest.approx(0.5, abs=1e-6)
    assert [h.path for h in index.search(basis((0, 1.0)), other)] == ["/photos/b.jpg"]
    images = index.similar_images(basis((0, 1.0))[None], REC)
    assert [h.path for h in images] == ["/photos/a.jpg"]
    with pytest.raises(IndexStoreError, match="no embeddings from recognizer 'nope'"):
        index.search(basis((0, 1.0)), "nope")
    with pytest.raises(IndexStoreError, match="has 8 dimensions but 'arcface:buffalo_l'"):
        index.search(np.ones(8, np.float32), REC)
    with pytest.raises(IndexStoreError, match="16-d embeddings here, got 8-d"):
        index.add_asset(make_asset("c.jpg"), [make_face()], np.ones((1, 8)), REC)
    assert index.asset("/photos/c.jpg") is None  # the failed add left nothing


def test_skip_logic(index: FaceIndex, make_asset, make_face) -> None:
    calls: list[str] = []

    def hasher(value: str):
        def _sha1() -> str:
            calls.append(value)
            return value

        return _sha1

    path = "/photos/a.jpg"
    assert index.needs_indexing(path, 1000, 7, hasher("sha-a.jpg"), REC)  # never seen
    index.add_asset(make_asset("a.jpg"), [make_face()], basis((0, 1.0))[None], REC)
    assert not index.needs_indexing(path, 1000, 7, hasher("x"), REC)
    assert calls == []  # size and mtime agree: the file is not hashed
    # Touched (new mtime) but the same bytes: skip, and remember the new mtime.
    assert not index.needs_indexing(path, 1000, 99, hasher("sha-a.jpg"), REC)
    assert calls == ["sha-a.jpg"]
    assert not index.needs_indexing(path, 1000, 99, hasher("y"), REC)
    assert calls == ["sha-a.jpg"]
    assert index.asset(path).mtime_ns == 99
    # Different bytes: redo.
    assert index.needs_indexing(path, 1001, 100, hasher("changed"), REC)
    # Another recognizer has not seen the file at all.
    assert index.needs_indexing(path, 1000, 99, hasher("sha-a.jpg"), "other")
    with pytest.raises(InputError, match="absolute"):
        index.needs_indexing("photos/a.jpg", 1, 1, hasher("z"), REC)


def test_images_without_faces_are_remembered(index: FaceIndex, make_asset) -> None:
    index.add_asset(make_asset("empty.jpg"), [], np.zeros((0, 0), np.float32), REC)
    assert not index.needs_indexing("/photos/empty.jpg", 1000, 7, lambda: "x", REC)
    assert index.search(basis((0, 1.0)), REC) == []  # known model, no face yet
    assert index.stats().recognizers[REC].assets == 1


def test_readding_replaces_and_old_rows_are_never_served(
    index: FaceIndex, make_asset, make_face
) -> None:
    asset = make_asset("a.jpg")
    index.add_asset(make_asset("b.jpg"), [make_face()], cos_vec(0, 0.1, 2)[None], REC)
    first = index.add_asset(
        asset, [make_face(0), make_face(1)], np.stack([basis((0, 1.0)), basis((1, 1.0))]), REC
    )
    old_ids = {f.face_id for f in index.faces_of(asset.path)}
    again = index.add_asset(asset, [make_face(5)], cos_vec(0, 0.3, 3)[None], REC)
    assert again == first
    new = index.faces_of(asset.path)
    assert len(new) == 1 and new[0].box_xyxy == make_face(5).box_xyxy
    hits = index.search(basis((0, 1.0)), REC, k=10)
    assert not old_ids & {h.face_id for h in hits}
    assert [h.score for h in hits] == pytest.approx([0.3, 0.1], abs=1e-6)
    images = index.similar_images(basis((1, 1.0))[None], REC)
    assert all(h.face_id not in old_ids for h in images)
    rec = index.stats().recognizers[REC]
    assert (rec.faces, rec.rows, rec.dead_rows) == (2, 4, 2)


def test_changed_bytes_drop_every_recognizers_faces(
    index: FaceIndex, make_asset, make_face
) -> None:
    index.add_asset(make_asset("a.jpg"), [make_face()], basis((0, 1.0))[None], REC)
    index.add_asset(make_asset("a.jpg"), [make_face()], basis((0, 1.0))[None], "other")
    index.add_asset(make_asset("a.jpg", sha1="new"), [make_face()], basis((1, 1.0))[None], REC)
    assert [f.recognizer for f in index.faces_of("/photos/a.jpg")] == [REC]
    assert index.needs_indexing("/photos/a.jpg", 1000, 7, lambda: "new", "other")
    assert index.search(basis((0, 1.0)), "other") == []


def test_remove_asset(index: FaceIndex, make_asset, make_face) -> None:
    index.add_asset(make_asset("a.jpg"), [make_face()], basis((0, 1.0))[None], REC)
    assert index.remove_asset("/photos/a.jpg")
    assert not index.remove_asset("/photos/a.jpg")
    assert index.search(basis((0, 1.0)), REC) == []
    assert index.stats().assets == 0


def test_bad_faces_are_refused(index: FaceIndex, make_asset, make_face) -> None:
    with pytest.raises(InputError, match="2 faces need a"):
        index.add_asset(make_asset("a.jpg"), [make_face(), make_face()], np.ones((1, D)), REC)
    with pytest.raises(InputError, match="NaN or inf"):
        index.add_asset(make_asset("a.jpg"), [make_face()], np.full((1, D), np.nan), REC)
    assert index.stats().assets == 0


def test_similar_images_ranking(index: FaceIndex, make_asset, make_face) -> None:
    q0, q1 = basis((0, 1.0)), basis((1, 1.0))
    library = {
        "a.jpg": [cos_vec(1, 0.9, 5)],  # 0.9 with query face 1
        "b.jpg": [cos_vec(0, 0.5, 6), cos_vec(0, 0.95, 7)],  # best face is its second
        "c.jpg": [basis((0, 0.7), (1, 0.7), (8, float(np.sqrt(0.02))))],  # tie: query face 0
        "e.jpg": [cos_vec(0, 0.7, 9)],  # ties with c, added later: after it
        "q.jpg": [q0, q1],  # the query image itself
        "z.jpg": [basis((10, 1.0))],  # unrelated: 0
    }
    for name, embs in library.items():
        index.add_asset(
            make_asset(name), [make_face(i) for i in range(len(embs))], np.stack(embs), REC
        )
    hits = index.similar_images(np.stack([q0, q1]), REC, k=4, exclude_path="/photos/q.jpg")
    assert [h.path for h in hits] == [
        "/photos/b.jpg",
        "/photos/a.jpg",
        "/photos/c.jpg",
        "/photos/e.jpg",
    ]
    assert [h.similarity for h in hits] == pytest.approx([0.95, 0.9, 0.7, 0.7], abs=1e-6)
    assert [h.query_face for h in hits] == [0, 1, 0, 0]
    b_faces = index.faces_of("/photos/b.jpg")
    assert hits[0].face_id == b_faces[1].face_id
    with_self = index.similar_images(np.stack([q0, q1]), REC, k=1)
    assert with_self[0].path == "/photos/q.jpg"
    assert with_self[0].similarity == pytest.approx(1.0, abs=1e-6)


def test_float16_index_and_torch_search_agree(
    tmp_path: Path, make_asset, make_face, rng, make_unit
) -> None:
    emb = make_unit(rng, 60, D)
    q = make_unit(rng, 4, D)
    results = []
    for name, kwargs in [
        ("f32", {}),
        ("f16", {"dtype": "float16"}),
        ("torch", {"device": torch.device("cpu"), "block_rows": 7}),
    ]:
        with FaceIndex(tmp_path / name, **kwargs) as idx:
            for i in range(20):
                idx.add_asset(
                    make_asset(f"{i}.jpg"),
                    [make_face(j) for j in range(3)],
                    emb[3 * i : 3 * i + 3],
                    REC,
                )
            results.append([[h.path for h in hits] for hits in idx.search_batch(q, REC, k=5)])
    assert results[0] == results[1] == results[2]
    stored = np.load(tmp_path / "f16" / matrix_file_name(REC))
    assert stored.dtype == np.float16 and stored.shape == (60, D)


def test_one_writer_at_a_time_and_readers_alongside(tmp_path: Path, make_asset, make_face) -> None:
    root = tmp_path / "idx"
    with pytest.raises(IndexStoreError, match="no index here"):
        FaceIndex(root, readonly=True)
    writer = FaceIndex(root)
    with pytest.raises(IndexStoreError, match=r"another process \(pid \d+\)"):
        FaceIndex(root)
    writer.add_asset(make_asset("a.jpg"), [make_face()], basis((0, 1.0))[None], REC)
    reader = FaceIndex(root, readonly=True)
    assert [h.path for h in reader.search(basis((0, 1.0)), REC)] == ["/photos/a.jpg"]
    writer.add_asset(make_asset("b.jpg"), [make_face()], cos_vec(0, 0.5, 1)[None], REC)
    # The reader's cached map moves on with the writer's commits.
    assert [h.path for h in reader.search(basis((0, 1.0)), REC)] == [
        "/photos/a.jpg",
        "/photos/b.jpg",
    ]
    with pytest.raises(IndexStoreError, match="read-only"):
        reader.add_asset(make_asset("c.jpg"), [], np.zeros((0, D)), REC)
    writer.close()
    FaceIndex(root).close()  # the lock went with the first writer
    reader.close()
