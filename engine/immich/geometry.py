"""Where Immich's face boxes lie on the original image, and which of AMP's boxes they are.

Immich detects faces on a preview: the upright image (EXIF orientation applied) resized so
that its shorter side is 1440 px, never enlarged. A face's box is in that preview's pixels
and the face records the preview's size (`imageWidth` x `imageHeight`). AMP's boxes are in
upright original pixels, so Immich's box maps onto them by scaling each axis by original size
over preview size; the orientation only decides which original side is the upright width.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BoxXyxy = tuple[float, float, float, float]

PREVIEW_SHORT_SIDE_PX = 1440  # Immich's preview size, the image its face detection sees

# EXIF orientations 5..8 turn the image by a quarter turn (with or without a mirror), so the
# upright image's width is the stored image's height.
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})


def parse_orientation(orientation: int | str | None) -> int:
    """EXIF orientation as an int 1..8; absent or unreadable values (Immich sends strings,
    sometimes "" or null) mean 1, the identity, as cameras and Immich treat them."""
    if orientation is None:
        return 1
    try:
        value = int(str(orientation).strip())
    except ValueError:
        return 1
    return value if 1 <= value <= 8 else 1


def upright_size(width: int, height: int, orientation: int | str | None) -> tuple[int, int]:
    """(width, height) of the upright image, from the stored image's size and orientation."""
    if parse_orientation(orientation) in _SWAPPING_ORIENTATIONS:
        return height, width
    return width, height


def preview_size(
    upright_w: int, upright_h: int, short_side_px: int = PREVIEW_SHORT_SIDE_PX
) -> tuple[int, int]:
    """Size of the preview Immich detects faces on: shorter side `short_side_px`, aspect kept,
    never enlarged (rounded as an image resize rounds)."""
    scale = preview_scale(upright_w, upright_h, short_side_px)
    return max(1, round(upright_w * scale)), max(1, round(upright_h * scale))


def preview_scale(
    upright_w: int, upright_h: int, short_side_px: int = PREVIEW_SHORT_SIDE_PX
) -> float:
    """Preview pixels per original pixel (<= 1)."""
    return min(1.0, short_side_px / min(upright_w, upright_h))


def preview_to_original(
    box_xyxy: Sequence[float],
    image_width: int,
    image_height: int,
    original_w: int,
    original_h: int,
) -> BoxXyxy:
    """Map an Immich box from its preview (`image_width` x `image_height`, upright) onto the
    upright original (`original_w` x `original_h`, see `upright_size`)."""
    if image_width <= 0 or image_height <= 0:
        raise ValueError(f"preview size must be positive, got {image_width}x{image_height}")
    sx = original_w / image_width
    sy = original_h / image_height
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    return x1 * sx, y1 * sy, x2 * sx, y2 * sy


def original_to_preview(
    box_xyxy: Sequence[float],
    original_w: int,
    original_h: int,
    image_width: int,
    image_height: int,
) -> BoxXyxy:
    """The inverse of `preview_to_original`."""
    return preview_to_original(box_xyxy, original_w, original_h, image_width, image_height)


def box_area(box_xyxy: Sequence[float]) -> float:
    x1, y1, x2, y2 = box_xyxy
    return max(0.0, float(x2) - float(x1)) * max(0.0, float(y2) - float(y1))


def iou_xyxy(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes; 0 when either is empty."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = float(ix) * float(iy)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def iou_matrix(
    boxes_a: Sequence[Sequence[float]], boxes_b: Sequence[Sequence[float]]
) -> np.ndarray:
    """(len(a), len(b)) IoU of every pair, float64."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_boxes(
    immich_boxes: Sequence[Sequence[float]],
    amp_boxes: Sequence[Sequence[float]],
    min_iou: float = 0.5,
) -> list[tuple[int, int, float]]:
    """One-to-one pairs (immich index, amp index, IoU) with IoU >= `min_iou`, sorted by the
    Immich index.

    The pairing maximises the summed IoU over the pairs that clear `min_iou` (Hungarian
    method, scipy's `linear_sum_assignment`); greedy pairing by IoU, used only when scipy is
    missing, can lose a match in crowded photos where one box overlaps two.
    """
    if len(immich_boxes) == 0 or len(amp_boxes) == 0:
        return []
    ious = iou_matrix(immich_boxes, amp_boxes)
    # Pairs under the bar are worth nothing, so they never displace a pair above it.
    gain = np.where(ious >= min_iou, ious, 0.0)
    pairs = _assign(gain)
    return sorted((i, j, float(ious[i, j])) for i, j in pairs if ious[i, j] >= min_iou)


def _assign(gain: np.ndarray) -> list[tuple[int, int]]:
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # pragma: no cover - scipy comes with insightface
        return _assign_greedy(gain)
    rows, cols = linear_sum_assignment(gain, maximize=True)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True)]


def _assign_greedy(gain: np.ndarray) -> list[tuple[int, int]]:
    order = np.argsort(-gain, axis=None, kind="stable")
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for flat in order:
        i, j = divmod(int(flat), gain.shape[1])
        if gain[i, j] <= 0:
            break
        if i not in used_rows and j not in used_cols:
            used_rows.add(i)
            used_cols.add(j)
            pairs.append((i, j))
    return pairs
