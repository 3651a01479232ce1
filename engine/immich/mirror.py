"""A local copy of what Immich knows about faces: its people, assets and per-asset faces,
and which local file each asset is. Kept beside the face index (`immich.sqlite`), refreshed
by `amp immich sync`, read by reconcile and identify without asking the server again."""

from __future__ import annotations

import base64
import binascii
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from engine.immich.models import Asset, AssetFace, Person

MIRROR_NAME = "immich.sqlite"
LinkMethod = Literal["path-map", "checksum", "download"]

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    is_hidden INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS assets (
    id TEXT PRIMARY KEY,
    checksum TEXT NOT NULL,
    original_path TEXT NOT NULL,
    original_file_name TEXT NOT NULL,
    exif_width INTEGER,
    exif_height INTEGER,
    orientation TEXT,
    local_path TEXT,
    link TEXT
);
CREATE TABLE IF NOT EXISTS faces (
    id TEXT PRIMARY KEY,
    asset_id TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    person_id TEXT,
    x1 INTEGER NOT NULL, y1 INTEGER NOT NULL, x2 INTEGER NOT NULL, y2 INTEGER NOT NULL,
    image_width INTEGER NOT NULL,
    image_height INTEGER NOT NULL,
    source_type TEXT
);
CREATE INDEX IF NOT EXISTS faces_asset ON faces (asset_id);
CREATE INDEX IF NOT EXISTS faces_person ON faces (person_id);
"""


_ASSET_SELECT = (
    "SELECT id, checksum, original_path, original_file_name, exif_width, exif_height, "
    "orientation, local_path, link FROM assets"
)


@dataclass(frozen=True)
class MirroredAsset:
    id: str
    checksum: str  # base64 SHA-1, as Immich gives it
    original_path: str  # on the Immich server
    original_file_name: str
    exif_width: int | None
    exif_height: int | None
    orientation: str | None
    local_path: str | None  # the same photo on this machine, once linked
    link: LinkMethod | None

    @property
    def sha1_hex(self) -> str:
        try:
            return base64.b64decode(self.checksum, validate=True).hex()
        except (binascii.Error, ValueError):
            return self.checksum.lower()  # some versions and tools give hex already


class ImmichMirror:
    def __init__(self, root: Path | str) -> None:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / MIRROR_NAME
        self._conn = sqlite3.connect(self.path, isolation_level=None)
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.executescript(_DDL)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ImmichMirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing (each call one transaction) -------------------------------------------

    def record_server(self, base_url: str, version: str) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._transaction():
            self._conn.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("base_url", base_url), ("version", version), ("synced_at", now)],
            )

    def replace_people(self, people: Iterable[Person]) -> None:
        with self._transaction():
            self._conn.execute("DELETE FROM people")
            self._conn.executemany(
                "INSERT INTO people VALUES (?, ?, ?)",
                [(p.id, p.name, int(p.is_hidden)) for p in people],
            )

    def replace_asset(self, asset: Asset, faces: Sequence[AssetFace]) -> None:
        """Store an asset as Immich has it now, with all its faces; keeps its local link."""
        exif = asset.exif_info
        with self._transaction():
            self._conn.execute(
                "INSERT INTO assets (id, checksum, original_path, original_file_name, "
                "exif_width, exif_height, orientation) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET checksum = excluded.checksum, "
                "original_path = excluded.original_path, "
                "original_file_name = excluded.original_file_name, "
                "exif_width = excluded.exif_width, exif_height = excluded.exif_height, "
                "orientation = excluded.orientation, "
                # A changed original invalidates the link to the old local copy.
                "local_path = CASE WHEN assets.checksum = excluded.checksum "
                "THEN assets.local_path END, "
                "link = CASE WHEN assets.checksum = excluded.checksum THEN assets.link END",
                (
                    asset.id,
                    asset.checksum,
                    asset.original_path,
                    asset.original_file_name,
                    exif.exif_image_width if exif else None,
                    exif.exif_image_height if exif else None,
                    exif.orientation if exif else None,
                ),
            )
            self._conn.execute("DELETE FROM faces WHERE asset_id = ?", (asset.id,))
            self._conn.executemany(
                "INSERT INTO faces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        f.id,
                        asset.id,
                        f.person.id if f.person else None,
                        f.bounding_box_x1,
                        f.bounding_box_y1,
                        f.bounding_box_x2,
                        f.bounding_box_y2,
                        f.image_width,
                        f.image_height,
                        f.source_type,
                    )
                    for f in faces
                ],
            )

    def forget_assets_except(self, keep: Iterable[str]) -> int:
        """Drop assets Immich no longer has (deleted or trashed); how many went."""
        keep_ids = set(keep)
        gone = [a for (a,) in self._conn.execute("SELECT id FROM assets") if a not in keep_ids]
        with self._transaction():
            self._conn.executemany("DELETE FROM assets WHERE id = ?", [(a,) for a in gone])
        return len(gone)

    def set_link(self, asset_id: str, local_path: Path | None, method: LinkMethod | None) -> None:
        with self._transaction():
            self._conn.execute(
                "UPDATE assets SET local_path = ?, link = ? WHERE id = ?",
                (str(local_path) if local_path else None, method, asset_id),
            )

    # -- reading -----------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta"))

    def people(self) -> dict[str, Person]:
        return {
            row[0]: Person(id=row[0], name=row[1], is_hidden=bool(row[2]))
            for row in self._conn.execute("SELECT id, name, is_hidden FROM people")
        }

    def assets(self) -> list[MirroredAsset]:
        return [MirroredAsset(*row) for row in self._conn.execute(_ASSET_SELECT + " ORDER BY id")]

    def asset(self, asset_id: str) -> MirroredAsset | None:
        row = self._conn.execute(_ASSET_SELECT + " WHERE id = ?", (asset_id,)).fetchone()
        return MirroredAsset(*row) if row else None

    def faces(self, asset_id: str) -> list[AssetFace]:
        people = self.people()
        return [
            AssetFace(
                id=row[0],
                person=people.get(row[1]) if row[1] else None,
                bounding_box_x1=row[2],
                bounding_box_y1=row[3],
                bounding_box_x2=row[4],
                bounding_box_y2=row[5],
                image_width=row[6],
                image_height=row[7],
                source_type=row[8],
            )
            for row in self._conn.execute(
                "SELECT id, person_id, x1, y1, x2, y2, image_width, image_height, source_type "
                "FROM faces WHERE asset_id = ? ORDER BY id",
                (asset_id,),
            )
        ]

    def assets_of_person(self, person_id: str) -> list[str]:
        return [
            a
            for (a,) in self._conn.execute(
                "SELECT DISTINCT asset_id FROM faces WHERE person_id = ? ORDER BY asset_id",
                (person_id,),
            )
        ]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
