"""Ranking images by their best face: the pure functions against plain Python loops."""

from __future__ import annotations

import numpy as np

from engine.index.similar import best_match_per_row, top_groups


def test_best_match_per_row_matches_a_loop(rng: np.random.Generator) -> None:
    m = rng.integers(-2, 3, size=(300, 6)).astype(np.float32)
    q = rng.integers(-2, 3, size=(4, 6)).astype(np.float32)
    exclude = rng.random(300) < 0.2
    best, which = best_match_per_row(q, m, block_rows=37, exclude=exclude)
    for r in range(300):
        products = [float(q[j] @ m[r]) for j in range(4)]
        if exclude[r]:
            assert np.isneginf(best[r])
            continue
        assert best[r] == max(products)
        assert which[r] == products.index(max(products))  # ties: the first query face


def test_top_groups_matches_a_loop(rng: np.random.Generator) -> None:
    values = rng.integers(0, 6, size=400).astype(np.float32)  # many ties
    groups = rng.integers(-1, 40, size=400)
    values[rng.random(400) < 0.1] = -np.inf
    ids, best, pos = top_groups(values, groups, 15)
    expected: dict[int, tuple[float, int]] = {}
    for p, (v, g) in enumerate(zip(values, groups, strict=True)):
        if g < 0 or np.isneginf(v):
            continue
        if g not in expected or v > expected[g][0]:
            expected[int(g)] = (float(v), p)
    ranked = sorted(expected.items(), key=lambda item: (-item[1][0], item[0]))[:15]
    assert ids.tolist() == [g for g, _ in ranked]
    assert best.tolist() == [v for _, (v, _) in ranked]
    assert pos.tolist() == [p for _, (_, p) in ranked]


def test_top_groups_with_nothing_to_rank() -> None:
    ids, best, pos = top_groups(np.array([-np.inf, 1.0]), np.array([3, -1]), 5)
    assert ids.size == best.size == pos.size == 0
