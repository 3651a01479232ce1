"""Box geometry between Immich's preview and the upright original, and box matching."""

from __future__ import annotations

import numpy as np
import pytest

from engine.immich import geometry
from engine.immich.geometry import (
    iou_xyxy,
    match_boxes,
    original_to_preview,
    parse_orientation,
    preview_size,
    preview_to_original,
    upright_size,
)


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (None, (4000, 3000)),
        ("", (4000, 3000)),
        ("garbage", (4000, 3000)),
        (1, (4000, 3000)),
        ("2", (4000, 3000)),
        (3, (4000, 3000)),
        ("4", (4000, 3000)),
        (5, (3000, 4000)),
        ("6", (3000, 4000)),
        (7, (3000, 4000)),
        ("8", (3000, 4000)),
        (9, (4000, 3000)),
    ],
)
def test_upright_size_swaps_axes_for_quarter_turns(
    orientation: int | str | None, expected: tuple[int, int]
) -> None:
    assert upright_size(4000, 3000, orientation) == expected


def test_parse_orientation_accepts_immich_strings() -> None:
    assert parse_orientation(" 6 ") == 6
    assert parse_orientation(0) == 1


def test_preview_is_shorter_side_1440_and_never_enlarged() -> None:
    assert preview_size(4000, 3000) == (1920, 1440)
    assert preview_size(3000, 4000) == (1440, 1920)
    assert preview_size(1000, 800) == (1000, 800)


def test_preview_box_maps_onto_a_rotated_original() -> None:
    # A phone photo stored 4000x3000 with orientation 6: upright it is 3000x4000, and
    # Immich's preview of it is 1440x1920.
    ow, oh = upright_size(4000, 3000, "6")
    pw, ph = preview_size(ow, oh)
    box = preview_to_original((144, 192, 288, 384), pw, ph, ow, oh)
    assert box == pytest.approx((300.0, 400.0, 600.0, 800.0))
    assert original_to_preview(box, ow, oh, pw, ph) == pytest.approx((144, 192, 288, 384))


def test_preview_to_original_scales_each_axis_on_its_own() -> None:
    # A preview whose rounding made the axes' scales differ slightly.
    box = preview_to_original((10, 10, 20, 20), 100, 50, 300, 200)
    assert box == pytest.approx((30.0, 40.0, 60.0, 80.0))
    with pytest.raises(ValueError, match="positive"):
        preview_to_original((0, 0, 1, 1), 0, 10, 10, 10)


def test_iou() -> None:
    assert iou_xyxy((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou_xyxy((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou_xyxy((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    assert iou_xyxy((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    matrix = geometry.iou_matrix([(0, 0, 10, 10), (5, 0, 15, 10)], [(5, 0, 15, 10)])
    np.testing.assert_allclose(matrix, [[50 / 150], [1.0]])


# Boxes share one row (y 0..100); along x: greedy takes the best pair (I0, A0) first and
# leaves I1 with only A1, under the bar; the optimal pairing matches both.
_I0, _I1 = (0, 0, 100, 100), (25, 0, 125, 100)
_A0, _A1 = (5, 0, 105, 100), (-30, 0, 90, 100)


def test_matching_is_optimal_where_greedy_fails() -> None:
    assert iou_xyxy(_I0, _A0) > max(iou_xyxy(_I0, _A1), iou_xyxy(_I1, _A0))
    assert iou_xyxy(_I1, _A1) < 0.5 <= min(iou_xyxy(_I0, _A1), iou_xyxy(_I1, _A0))
    greedy = geometry._assign_greedy(
        np.where(geometry.iou_matrix([_I0, _I1], [_A0, _A1]) >= 0.5, 1, 0)
        * geometry.iou_matrix([_I0, _I1], [_A0, _A1])
    )
    assert greedy == [(0, 0)]
    pairs = match_boxes([_I0, _I1], [_A0, _A1])
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (1, 0)]
    assert pairs[0][2] == pytest.approx(iou_xyxy(_I0, _A1))


def test_matching_keeps_only_pairs_over_the_bar_and_handles_empty_sides() -> None:
    assert match_boxes([(0, 0, 10, 10)], [(8, 8, 20, 20)]) == []
    assert match_boxes([], [(0, 0, 1, 1)]) == []
    assert match_boxes([(0, 0, 1, 1)], []) == []
    pairs = match_boxes([(0, 0, 10, 10), (100, 100, 110, 110)], [(101, 100, 111, 110)])
    assert [(i, j) for i, j, _ in pairs] == [(1, 0)]
    assert match_boxes([(0, 0, 10, 10)], [(5, 0, 15, 10)], min_iou=0.3) == [(0, 0, 50 / 150)]
