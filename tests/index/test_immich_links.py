"""What the Immich sync writes into the index: links, people, and embeddings read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import IndexStoreError
from engine.faces.types import DetectedFace
from engine.index.store import FaceIndex
from engine.index.types import AssetRecord


def _face(x: float) -> DetectedFace:
    return DetectedFace((x, 0.0, x + 10, 10.0), np.zeros((5, 2), np.float32), 0.9, "test")


def test_links_people_and_embeddings_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(3, 8)).astype(np.float32)
    with FaceIndex(tmp_path / "index") as index:
        asset = AssetRecord(str(tmp_path / "a.jpg"), 1, 1, "ab" * 20, 100, 80)
        index.add_asset(asset, [_face(0), _face(20), _face(40)], embeddings, "rec:a")
        ids = [f.face_id for f in index.faces_of(asset.path)]

        got = index.embeddings_of([ids[2], ids[0]], "rec:a")
        expected = embeddings[[2, 0]] / np.linalg.norm(embeddings[[2, 0]], axis=1, keepdims=True)
        np.testing.assert_allclose(got, expected, rtol=1e-6)

        index.link_immich(
            asset.path, "immich-asset-1", {ids[0]: ("f0", "p1"), ids[1]: ("f1", None)}
        )
        index.set_people({"p1": "Ada", "p2": ""})
        faces = index.faces_of(asset.path)
        assert [(f.immich_face_id, f.immich_person_id) for f in faces] == [
            ("f0", "p1"),
            ("f1", None),
            (None, None),
        ]
        assert index.people() == {"p1": "Ada", "p2": ""}
        assert index.immich_people_of(ids) == {ids[0]: "p1"}

        # A later sync replaces the links of that image wholesale.
        index.link_immich(asset.path, "immich-asset-1", {ids[2]: ("f9", "p2")})
        assert index.immich_people_of(ids) == {ids[2]: "p2"}

        with pytest.raises(IndexStoreError, match="no 'rec:b' embedding"):
            index.embeddings_of(ids[:1], "rec:b")
        with pytest.raises(IndexStoreError, match="not indexed"):
            index.link_immich(tmp_path / "other.jpg", "x", {})
