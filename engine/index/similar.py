"""Ranking images by their best face match: pure functions on arrays.

An image with several faces matches a query image with several faces as well as its best
pair does. Every library face gets its best score over the query faces (one product per
block of rows, as in `topk`), then each image takes the best of its faces. Exhaustive, so
exact: a top-k of faces followed by grouping could miss images when a few images hold all
the best faces.
"""

from __future__ import annotations

import numpy as np

from engine.index.topk import DEFAULT_BLOCK_ROWS, check_topk_inputs


def best_match_per_row(
    queries: np.ndarray,
    matrix: np.ndarray,
    *,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each matrix row, its best inner product with any query and that query's index.

    Returns (best (n,) float32, query (n,) int64); ties go to the lower query index;
    excluded rows and NaN scores get -inf.
    """
    q = check_topk_inputs(queries, matrix.shape, 1, exclude)
    n = matrix.shape[0]
    best = np.full(n, -np.inf, dtype=np.float32)
    which = np.zeros(n, dtype=np.int64)
    if q.shape[0] == 0:
        return best, which
    for start in range(0, n, block_rows):
        block = np.asarray(matrix[start : start + block_rows], dtype=np.float32)
        scores = block @ q.T
        np.copyto(scores, -np.inf, where=np.isnan(scores))
        stop = start + len(block)
        which[start:stop] = np.argmax(scores, axis=1)  # the first maximum: lowest query
        best[start:stop] = np.take_along_axis(scores, which[start:stop, None], axis=1)[:, 0]
    if exclude is not None:
        best[np.asarray(exclude, dtype=bool)] = -np.inf
    return best, which


def top_groups(
    values: np.ndarray, groups: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k groups with the highest best value: (group ids, best values, best positions).

    `groups[i]` is the group of position i, -1 for none; positions valued -inf never count.
    Sorted by value descending, ties to the lower group id; inside a group, ties to the
    lower position.
    """
    keep = np.flatnonzero((groups >= 0) & ~np.isneginf(values))
    if keep.size == 0 or k < 1:
        empty = np.empty(0, dtype=np.int64)
        return empty, np.empty(0, dtype=np.float32), empty
    v, g = values[keep], groups[keep]
    # Sort by group, then value descending, then position: each group's first is its best.
    order = np.lexsort((keep, -v, g))
    first = np.ones(order.size, dtype=bool)
    first[1:] = g[order][1:] != g[order][:-1]
    best = order[first]
    rank = np.lexsort((g[best], -v[best]))[:k]
    chosen = best[rank]
    return g[chosen].astype(np.int64), v[chosen].astype(np.float32), keep[chosen]
