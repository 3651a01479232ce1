"""The append-only embedding file: a valid .npy at rest, repaired back to committed rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import IndexStoreError
from engine.index.matrix import HEADER_BYTES, EmbeddingMatrix, npy_header


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_appended_file_loads_with_numpy(tmp_path: Path, dtype: str, rng) -> None:
    m = EmbeddingMatrix(tmp_path / "e.npy", 8, dtype)
    m.create()
    a, b = rng.standard_normal((3, 8)), rng.standard_normal((5, 8))
    m.append(0, a)
    m.append(3, b)
    loaded = np.load(m.path, mmap_mode="r")
    assert loaded.dtype == np.dtype(dtype) and loaded.shape == (8, 8)
    np.testing.assert_array_equal(loaded, np.concatenate([a, b]).astype(dtype))
    np.testing.assert_array_equal(m.view(8), loaded)
    assert m.view(0).shape == (0, 8)


def test_header_size_never_changes() -> None:
    for rows in (0, 7, 10**12):
        header = npy_header("float32", rows, 512)
        assert len(header) == HEADER_BYTES and header.endswith(b"\n")


def test_repair_cuts_debris_and_fixes_the_header(tmp_path: Path, rng) -> None:
    m = EmbeddingMatrix(tmp_path / "e.npy", 4, "float32")
    m.create()
    good = rng.standard_normal((2, 4)).astype(np.float32)
    m.append(0, good)
    m.append(2, rng.standard_normal((3, 4)))  # never committed: the caller's count stays 2
    assert m.repair(2) == 3
    assert m.path.stat().st_size == m.offset(2)
    np.testing.assert_array_equal(np.load(m.path), good)
    assert m.repair(2) == 0  # idempotent


def test_repair_of_a_torn_header(tmp_path: Path, rng) -> None:
    m = EmbeddingMatrix(tmp_path / "e.npy", 4, "float32")
    m.create()
    m.append(0, rng.standard_normal((2, 4)))
    with open(m.path, "r+b") as f:
        f.seek(20)
        f.write(b"garbage")
    assert m.repair(2) == 0
    assert np.load(m.path).shape == (2, 4)


def test_append_overwrites_debris_from_the_committed_count(tmp_path: Path, rng) -> None:
    m = EmbeddingMatrix(tmp_path / "e.npy", 4, "float32")
    m.create()
    m.append(0, np.ones((4, 4)))  # a failed append: never committed
    fresh = rng.standard_normal((1, 4)).astype(np.float32)
    m.append(0, fresh)
    np.testing.assert_array_equal(np.load(m.path), fresh)


def test_missing_committed_rows_are_an_error(tmp_path: Path) -> None:
    m = EmbeddingMatrix(tmp_path / "e.npy", 4, "float32")
    m.create()
    m.append(0, np.ones((2, 4)))
    with pytest.raises(IndexStoreError, match="holds 2 rows but the index committed 5"):
        m.repair(5)
    m.path.unlink()
    with pytest.raises(IndexStoreError, match="reindex"):
        m.repair(1)
