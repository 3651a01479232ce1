"""Exact cosine top-k over an embedding matrix, in bounded memory (numpy).

Rows and queries are L2-normalised upstream, so an inner product is a cosine similarity.
The matrix is read once, in blocks of rows (it may be a memory-mapped file larger than RAM,
or float16), and each block's best k merge into a running top-k per query: memory is
O(query_block x block_rows) whatever the matrix size.

The order is total and deterministic: higher score first, ties to the lower row index, so
two backends (numpy here, torch in `topk_torch`) and two block sizes give the same answer.
Rows that cannot match (excluded, or a NaN score) score -inf and come back as index -1.
"""

from __future__ import annotations

import numpy as np

from engine.errors import InputError, OptionError

# 16k rows x 256 queries of float32 scores is 16 MiB, plus one partition copy of it.
DEFAULT_BLOCK_ROWS = 16384
DEFAULT_QUERY_BLOCK = 256


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Each row (or the one vector) scaled to unit length, as float32; zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    # Squares summed in float64: in float32 they underflow for components below ~1e-19.
    sq = np.einsum("...i,...i->...", x, x, dtype=np.float64)[..., None]
    norms = np.sqrt(sq).astype(np.float32)
    # A zero embedding matches nothing; dividing it by 1 keeps it zero instead of NaN.
    return x / np.where(norms > 0, norms, np.float32(1.0))


def check_topk_inputs(
    queries: np.ndarray, matrix_shape: tuple[int, ...], k: int, exclude: np.ndarray | None
) -> np.ndarray:
    """Validated queries as a 2-D float32 array; shared by both backends so they fail alike."""
    if k < 1:
        raise OptionError(f"k must be at least 1, got {k}")
    if len(matrix_shape) != 2:
        raise InputError(f"the matrix must be 2-D (rows, dim), got shape {matrix_shape}")
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != matrix_shape[1]:
        raise InputError(
            f"queries of shape {np.shape(queries)} do not match {matrix_shape[1]}-d rows: "
            "embed the queries with the model that built the matrix"
        )
    if exclude is not None and np.shape(exclude) != (matrix_shape[0],):
        raise InputError(
            f"exclude must be a boolean mask of {matrix_shape[0]} rows, got {np.shape(exclude)}"
        )
    return q


def live_count(n_rows: int, exclude: np.ndarray | None) -> int:
    return n_rows if exclude is None else n_rows - int(np.count_nonzero(exclude))


def cosine_topk(
    queries: np.ndarray,
    matrix: np.ndarray,
    k: int,
    *,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    query_block: int = DEFAULT_QUERY_BLOCK,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k best rows of `matrix` for each query: (scores (q, k'), indices (q, k')).

    `queries` is (q, d) or (d,); `matrix` is (n, d), float32 or float16, in memory or a
    memmap; `exclude` is an optional (n,) boolean mask of rows never to return. k' is
    min(k, rows not excluded). Scores are float32 inner products computed in float32,
    sorted descending, ties to the lower index; an index of -1 (score -inf) marks a slot
    no row could fill (every remaining row had a NaN score).
    """
    q = check_topk_inputs(queries, matrix.shape, k, exclude)
    n = matrix.shape[0]
    k_out = min(k, live_count(n, exclude))
    best_s = np.empty((q.shape[0], 0), dtype=np.float32)
    best_i = np.empty((q.shape[0], 0), dtype=np.int64)
    if k_out == 0:
        return best_s, best_i
    running = [
        (best_s[a : a + query_block], best_i[a : a + query_block])
        for a in range(0, q.shape[0], query_block)
    ]
    # Matrix blocks outside, query blocks inside: the matrix (the big operand, maybe on
    # disk) is read exactly once however many queries there are.
    for start in range(0, n, block_rows):
        block = np.asarray(matrix[start : start + block_rows], dtype=np.float32)
        dead = None if exclude is None else np.asarray(exclude[start : start + len(block)])
        for j, a in enumerate(range(0, q.shape[0], query_block)):
            scores = q[a : a + query_block] @ block.T
            if dead is not None and dead.any():
                scores[:, dead] = -np.inf
            best_s, best_i = running[j]
            found = None
            if best_s.shape[1] == k_out:
                found = above_threshold(scores, best_s[:, -1:])
            if found is None:
                np.copyto(scores, -np.inf, where=np.isnan(scores))
                found = block_topk(scores, k_out)
            cand_s, cand_c = found
            running[j] = merge_topk(best_s, best_i, cand_s, cand_c + start, k_out)
    scores = np.concatenate([s for s, _ in running])
    indices = np.concatenate([i for _, i in running])
    indices[np.isneginf(scores)] = -1
    return scores, indices


# Past this many survivors in a row, the partition in `block_topk` is the cheaper way.
_SPARSE_MAX_PER_ROW = 256


def above_threshold(scores: np.ndarray, kth: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The columns of each row scoring strictly above `kth`, padded with -inf; None if many.

    Once a query's running top-k is full, only a score above its k-th can enter (an equal
    one loses the tie: its index is higher). After the first blocks few rows pass, so one
    comparison replaces the partition. NaN compares false and never passes.
    """
    passed = scores > kth
    counts = np.count_nonzero(passed, axis=1)
    width = int(counts.max())
    if width > _SPARSE_MAX_PER_ROW:
        return None
    rows, cols = np.nonzero(passed)
    slot = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    cand_s = np.full((scores.shape[0], width), -np.inf, dtype=np.float32)
    # Padding sorts after every real score (stable sort, -inf last): it never enters a full
    # top-k. Its index is irrelevant; 0 keeps the arithmetic on indices in range.
    cand_c = np.zeros((scores.shape[0], width), dtype=np.int64)
    cand_s[rows, slot] = scores[rows, cols]
    cand_c[rows, slot] = cols
    return cand_s, cand_c


def block_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns of each row, ties to the lower column, in column order (unsorted).

    `argpartition` alone would pick among tied values at the k-th place arbitrarily; here
    the k-th value is found by partition, everything above it is taken, and the tied ones
    are taken lowest column first, so the selection is exact and deterministic.
    """
    rows, n = scores.shape
    if k >= n:
        return scores, np.broadcast_to(np.arange(n, dtype=np.int64), (rows, n))
    kth = np.partition(scores, n - k, axis=1)[:, n - k, None]
    take = scores >= kth
    tied = np.flatnonzero(np.count_nonzero(take, axis=1) > k)
    if tied.size:
        sub = scores[tied]
        above = sub > kth[tied]
        equal = sub == kth[tied]
        room = k - np.count_nonzero(above, axis=1, keepdims=True)
        take[tied] = above | (equal & (np.cumsum(equal, axis=1) <= room))
    # Exactly k per row now, and nonzero walks row-major, so columns stay ascending per row.
    cols = np.nonzero(take)[1].reshape(rows, k)
    return np.take_along_axis(scores, cols, axis=1), cols


def merge_topk(
    best_s: np.ndarray, best_i: np.ndarray, cand_s: np.ndarray, cand_i: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge a block's candidates into the running top-k, keeping (score desc, index asc).

    Blocks arrive in row order, so every candidate index exceeds every running one and the
    candidates are in index order; a stable sort on score alone then keeps ties by index.
    """
    s = np.concatenate([best_s, cand_s], axis=1)
    i = np.concatenate([best_i, cand_i], axis=1)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(i, order, axis=1)
