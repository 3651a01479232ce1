"""Exact top-k (numpy and torch) against a brute-force float64 argsort of the full product."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import InputError, OptionError
from engine.index.topk import cosine_topk, l2_normalize
from engine.index.topk_torch import cosine_topk_torch

CPU = torch.device("cpu")


def reference_topk(
    q: np.ndarray, m: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Full float64 product, sorted by (score desc, index asc): the order both backends promise."""
    scores = np.atleast_2d(q).astype(np.float64) @ m.astype(np.float64).T
    index = np.broadcast_to(np.arange(m.shape[0]), scores.shape)
    if exclude is not None:
        scores = scores[:, ~exclude]
        index = index[:, ~exclude]
    order = np.lexsort((index, -scores), axis=-1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(index, order, 1)


def tie_heavy(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Small integers: every product is exact in float32 whatever the summation order, and
    equal scores are frequent, so the tie order is tested exactly."""
    return rng.integers(-2, 3, size=(n, d)).astype(np.float32)


CASES = [
    # n, d, q, k, block_rows, query_block
    (50, 8, 7, 10, 7, 3),  # blocks smaller than k in places, ragged last block
    (1000, 16, 9, 10, 128, 4),
    (1000, 16, 5, 1, 1000, 64),
    (30, 4, 3, 50, 4, 2),  # k > n
    (10, 3, 2, 3, 1, 1),  # one row per block
]


@pytest.mark.parametrize(("n", "d", "nq", "k", "block_rows", "query_block"), CASES)
def test_numpy_matches_reference_with_ties(
    rng: np.random.Generator, n: int, d: int, nq: int, k: int, block_rows: int, query_block: int
) -> None:
    m, q = tie_heavy(rng, n, d), tie_heavy(rng, nq, d)
    scores, index = cosine_topk(q, m, k, block_rows=block_rows, query_block=query_block)
    ref_s, ref_i = reference_topk(q, m, k)
    assert index.shape == (nq, min(k, n))
    np.testing.assert_array_equal(index, ref_i)
    np.testing.assert_array_equal(scores, ref_s.astype(np.float32))
    assert scores.dtype == np.float32 and index.dtype == np.int64


@pytest.mark.parametrize(("n", "d", "nq", "k", "block_rows", "query_block"), CASES)
def test_torch_equals_numpy_with_ties(
    rng: np.random.Generator, n: int, d: int, nq: int, k: int, block_rows: int, query_block: int
) -> None:
    m, q = tie_heavy(rng, n, d), tie_heavy(rng, nq, d)
    expected = cosine_topk(q, m, k, block_rows=block_rows, query_block=query_block)
    for matrix in (m, torch.from_numpy(m)):
        got = cosine_topk_torch(
            q, matrix, k, device=CPU, block_rows=block_rows, query_block=query_block
        )
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_array_equal(got[0], expected[0])


def test_random_unit_vectors_match_float64(rng: np.random.Generator, make_unit) -> None:
    m, q = make_unit(rng, 5000, 64), make_unit(rng, 33, 64)
    ref_s, ref_i = reference_topk(q, m, 12)
    # Gaps wider than float32 rounding (down to the 12th) make an exact index comparison fair.
    assert (-np.diff(ref_s, axis=1)).min() > 1e-6
    ref_s, ref_i = ref_s[:, :11], ref_i[:, :11]
    for scores, index in (
        cosine_topk(q, m, 11, block_rows=700, query_block=8),
        cosine_topk_torch(q, m, 11, device=CPU, block_rows=700, query_block=8),
    ):
        np.testing.assert_array_equal(index, ref_i)
        np.testing.assert_allclose(scores, ref_s, atol=1e-6)
        assert np.all(np.diff(scores, axis=1) <= 0)


def test_float16_matrix_is_scored_in_float32(rng: np.random.Generator, make_unit) -> None:
    m16 = make_unit(rng, 2000, 32).astype(np.float16)
    q = make_unit(rng, 6, 32)
    ref_s, ref_i = reference_topk(q, m16.astype(np.float32), 10)
    for scores, index in (
        cosine_topk(q, m16, 10, block_rows=300),
        cosine_topk_torch(q, m16, 10, device=CPU, block_rows=300),
    ):
        np.testing.assert_array_equal(index, ref_i)
        np.testing.assert_allclose(scores, ref_s, atol=1e-6)
        assert scores.dtype == np.float32


def test_memmap_matrix(tmp_path, rng: np.random.Generator) -> None:
    m, q = tie_heavy(rng, 777, 12), tie_heavy(rng, 5, 12)
    np.save(tmp_path / "m.npy", m)
    mapped = np.load(tmp_path / "m.npy", mmap_mode="r")  # read-only: torch must copy blocks
    ref = reference_topk(q, m, 9)
    for scores, index in (
        cosine_topk(q, mapped, 9, block_rows=100),
        cosine_topk_torch(q, mapped, 9, device=CPU, block_rows=100),
    ):
        np.testing.assert_array_equal(index, ref[1])
        np.testing.assert_array_equal(scores, ref[0].astype(np.float32))


def test_excluded_rows_are_never_returned(rng: np.random.Generator) -> None:
    m, q = tie_heavy(rng, 200, 6), tie_heavy(rng, 4, 6)
    exclude = np.zeros(200, dtype=bool)
    exclude[np.argmax(q[0] @ m.T)] = True  # the best row of query 0 is dead
    exclude[rng.choice(np.flatnonzero(~exclude), 149, replace=False)] = True
    ref_s, ref_i = reference_topk(q, m, 60, exclude)
    for scores, index in (
        cosine_topk(q, m, 60, block_rows=16, exclude=exclude),
        cosine_topk_torch(q, m, 60, device=CPU, block_rows=16, exclude=exclude),
    ):
        assert index.shape == (4, 50)  # k capped at the 50 live rows
        assert not exclude[index].any()
        np.testing.assert_array_equal(index, ref_i)
        np.testing.assert_array_equal(scores, ref_s.astype(np.float32))


def test_everything_excluded_gives_empty_columns(rng: np.random.Generator) -> None:
    m = tie_heavy(rng, 20, 4)
    scores, index = cosine_topk(m[:3], m, 5, exclude=np.ones(20, dtype=bool))
    assert scores.shape == index.shape == (3, 0)


def test_nan_rows_fill_no_slot(rng: np.random.Generator) -> None:
    m = tie_heavy(rng, 6, 4)
    m[2] = np.nan
    for scores, index in (
        cosine_topk(m[:1] * 0 + 1, m, 6, block_rows=4),
        cosine_topk_torch(m[:1] * 0 + 1, m, 6, device=CPU, block_rows=4),
    ):
        assert 2 not in index[0, :5] and index[0, 5] == -1 and np.isneginf(scores[0, 5])


def test_one_query_vector_gives_one_row(rng: np.random.Generator) -> None:
    m = tie_heavy(rng, 40, 5)
    scores, index = cosine_topk(m[3], m, 4)
    assert index.shape == (1, 4)
    np.testing.assert_array_equal(index, reference_topk(m[3], m, 4)[1])


def test_bad_inputs_say_what_is_wrong(rng: np.random.Generator) -> None:
    m = tie_heavy(rng, 10, 5)
    with pytest.raises(OptionError, match="k must be at least 1"):
        cosine_topk(m[:1], m, 0)
    with pytest.raises(InputError, match="do not match 5-d rows"):
        cosine_topk(np.ones((1, 4), np.float32), m, 3)
    with pytest.raises(InputError, match="boolean mask of 10 rows"):
        cosine_topk(m[:1], m, 3, exclude=np.zeros(9, dtype=bool))
    with pytest.raises(InputError, match="do not match"):
        cosine_topk_torch(np.ones((1, 4), np.float32), m, 3, device=CPU)


def test_l2_normalize_keeps_zero_rows_zero() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1e-30, 0.0]], dtype=np.float64)
    out = l2_normalize(x)  # warnings are errors: a 0/0 would fail here
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(l2_normalize(np.array([0.0, 2.0])), [0.0, 1.0])


def test_rising_scores_take_the_partition_path_every_block() -> None:
    """Each block beats the last one everywhere: the threshold shortcut must step aside."""
    n = 5000
    m = np.zeros((n, 3), dtype=np.float32)
    m[:, 0] = np.arange(1, n + 1, dtype=np.float32)
    q = np.array([[1.0, 0.0, 0.0], [0.5, 0.0, 0.0]], dtype=np.float32)
    for scores, index in (
        cosine_topk(q, m, 7, block_rows=1000),
        cosine_topk_torch(q, m, 7, device=CPU, block_rows=1000),
    ):
        np.testing.assert_array_equal(index, np.tile(np.arange(n - 1, n - 8, -1), (2, 1)))
        np.testing.assert_array_equal(scores[1], 0.5 * (index[1] + 1))
