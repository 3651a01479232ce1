"""Find small faces by also running a detector on full-resolution tiles of a large image.

A detector with a 640-px input sees a 6000-px photo shrunk almost 10 times, so a face 100 px
wide becomes 10 px: below what SCRFD or YuNet find. Tiles of `tile_px` at full resolution
keep such faces at their real size. Tiles overlap by `overlap_px`, so any face at most that
big lies wholly inside at least one tile; a detection touching a tile's inner edge is a face
cut in two and is dropped (its whole copy is in the neighbour tile, or, if it is bigger than
the overlap, in the global pass, where it is big enough to be found). NMS then merges the
duplicates across tiles and with the global pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import OptionError
from engine.faces.boxes import clip_face, map_faces, nms_faces
from engine.faces.types import DetectedFace, FaceDetector

# A detection whose box comes within this many pixels of an inner tile edge counts as cut.
EDGE_MARGIN_PX = 2.0


@dataclass(frozen=True)
class TileOptions:
    """How to tile: `tile_px` square tiles overlapping by `overlap_px`, merged at `nms_thresh`."""

    tile_px: int = 640
    overlap_px: int = 160
    nms_thresh: float = 0.4

    def __post_init__(self) -> None:
        if self.tile_px < 32:
            raise OptionError(f"tile size must be at least 32 px, got {self.tile_px}")
        if not 0 <= self.overlap_px < self.tile_px:
            raise OptionError(
                f"tile overlap must be in [0, {self.tile_px}) px, got {self.overlap_px}"
            )
        if not 0.0 <= self.nms_thresh <= 1.0:
            raise OptionError(f"NMS threshold must be in [0, 1], got {self.nms_thresh}")


def tile_starts(length: int, tile_px: int, overlap_px: int) -> list[int]:
    """Start offsets of tiles covering [0, length): evenly spread, each step at most
    tile_px - overlap_px, the last tile flush with the end. One tile when it all fits."""
    if length <= tile_px:
        return [0]
    stride = tile_px - overlap_px
    count = -(-(length - tile_px) // stride) + 1  # ceil division
    last = length - tile_px
    return [round(i * last / (count - 1)) for i in range(count)]


def tile_grid(width: int, height: int, options: TileOptions) -> list[tuple[int, int, int, int]]:
    """Tiles as (x0, y0, x1, y1) pixel rectangles, row by row."""
    xs = tile_starts(width, options.tile_px, options.overlap_px)
    ys = tile_starts(height, options.tile_px, options.overlap_px)
    return [
        (x, y, min(x + options.tile_px, width), min(y + options.tile_px, height))
        for y in ys
        for x in xs
    ]


def touches_inner_edge(
    box_xyxy: tuple[float, float, float, float],
    tile: tuple[int, int, int, int],
    width: int,
    height: int,
) -> bool:
    """True when the box (in image pixels) reaches an edge of `tile` that is not the image's."""
    x1, y1, x2, y2 = box_xyxy
    tx0, ty0, tx1, ty1 = tile
    m = EDGE_MARGIN_PX
    return (
        (tx0 > 0 and x1 <= tx0 + m)
        or (ty0 > 0 and y1 <= ty0 + m)
        or (tx1 < width and x2 >= tx1 - m)
        or (ty1 < height and y2 >= ty1 - m)
    )


def detect_tiled(
    detector: FaceDetector, image_rgb: np.ndarray, options: TileOptions
) -> list[DetectedFace]:
    """Faces from one pass over the whole image plus one pass per full-resolution tile.

    An image that fits in one tile gets the global pass only (its tiles would be the image).
    """
    height, width = image_rgb.shape[:2]
    found = list(detector.detect(image_rgb))
    if width <= options.tile_px and height <= options.tile_px:
        return found
    for tile in tile_grid(width, height, options):
        x0, y0, x1, y1 = tile
        in_tile = detector.detect(np.ascontiguousarray(image_rgb[y0:y1, x0:x1]))
        for face in map_faces(in_tile, offset_xy=(float(x0), float(y0))):
            if not touches_inner_edge(face.box_xyxy, tile, width, height):
                found.append(face)
    merged = nms_faces(found, options.nms_thresh)
    return [clip_face(f, width, height) for f in merged]
