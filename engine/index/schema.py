"""The SQLite schema of the face index, and opening a connection with the right pragmas."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.errors import IndexStoreError

SCHEMA_VERSION = 1

# `matrices.rows` is the committed row count of a recognizer's embedding file: the file is
# appended and synced before the transaction that raises `rows` commits, so the file always
# holds at least `rows` rows and anything past them is debris to cut off on open.
# `generation` moves on every change to a recognizer's faces, so readers know when to reload
# their row -> face map. Faces of a replaced image are deleted; their rows stay in the file as
# `dead_rows` (never served: only rows that a face references are live).
# Ids are AUTOINCREMENT: a deleted face's or asset's id is never handed to another, so an id
# kept elsewhere (a cache, the Immich sync) cannot silently point at a different face.
# The immich_* columns and `people` are filled by the Immich sync, nullable until then.
_DDL = """
CREATE TABLE assets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha1 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    taken_at TEXT,
    immich_asset_id TEXT
);
CREATE INDEX assets_immich ON assets (immich_asset_id);

CREATE TABLE matrices (
    recognizer TEXT PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,
    dim INTEGER NOT NULL,
    dtype TEXT NOT NULL,
    rows INTEGER NOT NULL,
    dead_rows INTEGER NOT NULL DEFAULT 0,
    generation INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE scans (
    asset_id INTEGER NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    recognizer TEXT NOT NULL,
    face_count INTEGER NOT NULL,
    PRIMARY KEY (asset_id, recognizer)
);

CREATE TABLE faces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_id INTEGER NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    recognizer TEXT NOT NULL REFERENCES matrices (recognizer),
    row INTEGER NOT NULL,
    x1 REAL NOT NULL,
    y1 REAL NOT NULL,
    x2 REAL NOT NULL,
    y2 REAL NOT NULL,
    landmarks BLOB NOT NULL,
    score REAL NOT NULL,
    detector TEXT NOT NULL,
    immich_face_id TEXT,
    immich_person_id TEXT,
    UNIQUE (recognizer, row)
);
CREATE INDEX faces_asset ON faces (asset_id, recognizer);
CREATE INDEX faces_immich_person ON faces (immich_person_id);

CREATE TABLE people (
    immich_person_id TEXT PRIMARY KEY,
    name TEXT
);
"""


def connect(db_path: Path, *, readonly: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on."""
    if readonly:
        conn = sqlite3.connect(
            f"{db_path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
        )
    else:
        conn = sqlite3.connect(db_path, isolation_level=None)
    # A reader may meet a checkpoint in progress; wait for it rather than fail at once.
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    if not readonly:
        # WAL lets readers in other processes search while one writer indexes.
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit reported done survives a power cut, not only a killed process.
        conn.execute("PRAGMA synchronous = FULL")
    return conn


def ensure_schema(conn: sqlite3.Connection, root: Path, *, readonly: bool) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise IndexStoreError(
            root,
            f"schema version {version} is newer than this AMP knows ({SCHEMA_VERSION}); "
            "upgrade AMP to open it",
        )
    if readonly:
        raise IndexStoreError(root, "the index is empty; build it with a writer first")
    conn.execute("BEGIN IMMEDIATE")
    try:
        # executescript would commit on its own; one statement at a time keeps this atomic.
        for statement in _DDL.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
