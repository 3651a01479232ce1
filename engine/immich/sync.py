"""`amp immich sync`: mirror Immich's people and faces, find each asset's local file, index
those files with AMP's models, and link AMP's faces to Immich's by box overlap.

Incremental: assets already linked to a file that still exists keep their link, files
already indexed (same size and mtime, or sha1) are not analysed again, and downloads happen
once. Immich's people and faces are read afresh every time (they change when users fix them).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from engine.errors import AmpError, OptionError
from engine.faces.pipeline import SizedDetector
from engine.faces.types import FaceRecognizer
from engine.immich.client import ImmichClient
from engine.immich.geometry import match_boxes, preview_to_original
from engine.immich.mirror import ImmichMirror, LinkMethod, MirroredAsset
from engine.index.indexer import index_files
from engine.index.store import FaceIndex

log = logging.getLogger(__name__)
MIN_IOU = 0.5

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class PathMap:
    """`IMMICH_PREFIX=LOCAL_PREFIX`: Immich's path of an original, as seen on this machine."""

    immich_prefix: str
    local_prefix: Path

    @classmethod
    def parse(cls, text: str) -> PathMap:
        immich, sep, local = text.partition("=")
        if not sep or not immich or not local:
            raise OptionError(f"--path-map needs IMMICH_PREFIX=LOCAL_PREFIX, got {text!r}")
        return cls(immich.rstrip("/"), Path(local).expanduser())

    def apply(self, original_path: str) -> Path | None:
        path = PurePosixPath(original_path)
        prefix = PurePosixPath(self.immich_prefix)
        if path != prefix and prefix not in path.parents:
            return None
        rest = path.relative_to(prefix)
        if ".." in rest.parts:
            return None
        return self.local_prefix.joinpath(*rest.parts)


@dataclass
class SyncReport:
    server_version: str = ""
    people: int = 0
    assets: int = 0
    immich_faces: int = 0
    forgotten: int = 0
    linked: Counter[str] = field(default_factory=Counter)  # link method -> assets
    unlinked: list[str] = field(default_factory=list)  # asset ids with no local file
    indexed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path or asset id, error)
    matched_faces: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "server_version": self.server_version,
            "people": self.people,
            "assets": self.assets,
            "immich_faces": self.immich_faces,
            "forgotten_assets": self.forgotten,
            "linked": dict(self.linked),
            "unlinked": len(self.unlinked),
            "unlinked_asset_ids": self.unlinked,
            "newly_indexed": self.indexed,
            "matched_faces": self.matched_faces,
            "failed": [{"item": item, "error": error} for item, error in self.failed],
        }


def sync_immich(
    client: ImmichClient,
    mirror: ImmichMirror,
    index: FaceIndex,
    *,
    detector: SizedDetector,
    recognizer: FaceRecognizer,
    path_maps: Sequence[PathMap] = (),
    download_dir: Path | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    report = SyncReport()
    tick = progress or (lambda phase, done, total: None)
    version = client.version()
    report.server_version = str(version)
    mirror.record_server(client.base_url, str(version))

    assets = [a for a in client.iter_assets() if a.type == "IMAGE"]
    faces = client.map_concurrent(lambda a: client.faces(a.id), assets)

    # GET /people leaves out people with fewer faces than Immich's minFaces; the faces name
    # them all, so both sources make the list.
    people = {p.id: p for p in client.iter_people(with_hidden=True)}
    for asset_faces in faces:
        for face in asset_faces:
            if face.person is not None:
                people.setdefault(face.person.id, face.person)
    mirror.replace_people(people.values())
    index.set_people({p.id: p.name for p in people.values()})
    report.people = len(people)
    for done, (asset, asset_faces) in enumerate(zip(assets, faces, strict=True), 1):
        mirror.replace_asset(asset, asset_faces)
        report.immich_faces += len(asset_faces)
        tick("faces", done, len(assets))
    report.assets = len(assets)
    report.forgotten = mirror.forget_assets_except(a.id for a in assets)

    mirrored = mirror.assets()
    for done, asset in enumerate(mirrored, 1):
        method = _link(asset, mirror, index, client, path_maps, download_dir, report)
        if method is None:
            report.unlinked.append(asset.id)
        else:
            report.linked[method] += 1
        tick("link", done, len(mirrored))

    linked = [a for a in mirror.assets() if a.local_path]
    indexed = index_files(
        [Path(a.local_path) for a in linked if a.local_path],
        index,
        detector,
        recognizer,
        on_result=lambda r: tick("index", 0, 0),
    )
    report.indexed = indexed.count("indexed")
    report.failed += [(str(r.path), r.error or "") for r in indexed.results if r.status == "failed"]

    for done, asset in enumerate(linked, 1):
        report.matched_faces += _link_faces(asset, mirror, index, recognizer.name)
        tick("match", done, len(linked))
    return report


def _link(
    asset: MirroredAsset,
    mirror: ImmichMirror,
    index: FaceIndex,
    client: ImmichClient,
    path_maps: Sequence[PathMap],
    download_dir: Path | None,
    report: SyncReport,
) -> LinkMethod | None:
    """Find the local file of `asset`: its existing link, a path map, an indexed file with
    the same SHA-1, or a download into the cache; None when none applies."""
    if asset.local_path and Path(asset.local_path).is_file():
        return asset.link
    for path_map in path_maps:
        candidate = path_map.apply(asset.original_path)
        if candidate is not None and candidate.is_file():
            mirror.set_link(asset.id, candidate.resolve(), "path-map")
            return "path-map"
    for path in index.paths_with_sha1(asset.sha1_hex):
        if Path(path).is_file():
            mirror.set_link(asset.id, Path(path), "checksum")
            return "checksum"
    if download_dir is not None:
        suffix = PurePosixPath(asset.original_file_name or asset.original_path).suffix
        target = download_dir / f"{asset.id}{suffix.lower()}"
        try:
            client.download_original(asset.id, target, expected_checksum=asset.checksum)
        except AmpError as exc:
            report.failed.append((asset.id, str(exc)))
            return None
        mirror.set_link(asset.id, target.resolve(), "download")
        return "download"
    mirror.set_link(asset.id, None, None)
    return None


def _link_faces(
    asset: MirroredAsset, mirror: ImmichMirror, index: FaceIndex, recognizer: str
) -> int:
    """Match Immich's faces of a linked asset with AMP's by IoU, mapped onto the original;
    record the pairs in the index. Returns how many faces matched."""
    if not asset.local_path:
        return 0
    record = index.asset(asset.local_path)
    if record is None:  # its indexing failed; reported already
        return 0
    amp_faces = index.faces_of(asset.local_path, recognizer)
    immich_faces = mirror.faces(asset.id)
    immich_boxes = [
        preview_to_original(f.box_xyxy, f.image_width, f.image_height, record.width, record.height)
        for f in immich_faces
    ]
    pairs = match_boxes(immich_boxes, [f.box_xyxy for f in amp_faces], MIN_IOU)
    links = {
        amp_faces[j].face_id: (
            immich_faces[i].id,
            immich_faces[i].person.id if immich_faces[i].person else None,
        )
        for i, j, _ in pairs
    }
    index.link_immich(asset.local_path, asset.id, links)
    return len(links)
