"""`amp immich reconcile`, the side with effects: gather what sync stored (Immich's faces in
the mirror, AMP's faces and embeddings in the index), run the pure cross-check, and cut the
face crops its report shows from the local originals."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from engine.faces.pixels import as_rgb8
from engine.immich.crops import crop_face, to_data_uri_jpeg
from engine.immich.findings import (
    AmpFaceIn,
    AssetIn,
    ImmichFaceIn,
    PersonIn,
    ReconcileReport,
    Thresholds,
)
from engine.immich.geometry import preview_to_original
from engine.immich.mirror import ImmichMirror
from engine.immich.reconcile import reconcile
from engine.index.store import FaceIndex
from engine.io.decode import read_image


def crosscheck(
    mirror: ImmichMirror, index: FaceIndex, recognizer: str, thresholds: Thresholds
) -> ReconcileReport:
    """Cross-check every linked asset that AMP indexed with `recognizer`."""
    assets: list[AssetIn] = []
    immich_faces: list[ImmichFaceIn] = []
    amp_faces: list[AmpFaceIn] = []
    for asset in mirror.assets():
        record = index.asset(asset.local_path) if asset.local_path else None
        if record is None:
            continue  # not linked to a local file, or its analysis failed: nothing to compare
        assets.append(AssetIn(asset.id, record.width, record.height, asset.local_path))
        for face in mirror.faces(asset.id):
            box = preview_to_original(
                face.box_xyxy, face.image_width, face.image_height, record.width, record.height
            )
            person = face.person.id if face.person else None
            immich_faces.append(ImmichFaceIn(face.id, asset.id, person, box, face.source_type))
        stored = index.faces_of(record.path, recognizer)
        embeddings = index.embeddings_of([f.face_id for f in stored], recognizer)
        amp_faces += [
            AmpFaceIn(f.face_id, asset.id, f.box_xyxy, embedding)
            for f, embedding in zip(stored, embeddings, strict=True)
        ]
    people = [PersonIn(p.id, p.name, p.is_hidden) for p in mirror.people().values()]
    report = reconcile(assets, people, immich_faces, amp_faces, thresholds)
    return dataclasses.replace(report, recognizer=recognizer)


def face_crops(
    report: ReconcileReport,
    wanted: Mapping[str, tuple[str, tuple[float, float, float, float]]],
    size_px: int = 112,
) -> dict[str, str]:
    """JPEG data URIs of the faces a report shows (`required_crops`: key -> asset, box), cut
    from the local originals; each original is decoded once."""
    paths = {a.asset_id: a.path for a in report.assets if a.path}
    by_asset: dict[str, list[str]] = {}
    for key, (asset_id, _) in wanted.items():
        by_asset.setdefault(asset_id, []).append(key)
    crops: dict[str, str] = {}
    for asset_id, keys in by_asset.items():
        path = paths.get(asset_id)
        if path is None or not Path(path).is_file():
            continue
        rgb = as_rgb8(read_image(Path(path)).pixels)
        for key in keys:
            crops[key] = to_data_uri_jpeg(crop_face(rgb, wanted[key][1], size_px=size_px))
    return crops
