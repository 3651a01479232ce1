"""The face index on disk: SQLite metadata plus one append-only embedding file per recognizer.

    root/index.sqlite                     assets, faces, scans, matrices, people (WAL)
    root/embeddings-<recognizer>.npy      float32 or float16 rows, memory-mapped for search
    root/index.lock                       held by the one writer

Crash safety: `add_asset` appends the embeddings and fsyncs the file *before* committing
the transaction that records them and raises the recognizer's committed row count. A
process killed anywhere leaves either the old state plus debris rows past the committed
count (cut off when the next writer opens) or the new state; readers only ever map
committed rows. A rerun skips what was committed (`needs_indexing`) and redoes the rest.

One writer at a time (a second gets `IndexStoreError` at once); any number of read-only
instances, in other processes, search a consistent snapshot while it writes. An instance
is not thread-safe: give each thread its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha1
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import IndexStoreError, InputError, OptionError
from engine.faces.types import DetectedFace
from engine.index.lock import WriterLock
from engine.index.matrix import EmbeddingMatrix
from engine.index.schema import connect, ensure_schema
from engine.index.similar import best_match_per_row, top_groups
from engine.index.topk import DEFAULT_BLOCK_ROWS, cosine_topk, l2_normalize
from engine.index.types import (
    EMBEDDING_DTYPES,
    AssetRecord,
    EmbeddingDtype,
    FaceHit,
    ImageHit,
    IndexStats,
    RecognizerStats,
    StoredFace,
)

if TYPE_CHECKING:
    import torch

DB_NAME = "index.sqlite"
LOCK_NAME = "index.lock"
_SQL_CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit


def matrix_file_name(recognizer: str) -> str:
    """`embeddings-<slug>.npy`; the hash keeps names apart that slug alike (a:b, a/b)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", recognizer).strip("-.")[:60] or "model"
    return f"embeddings-{slug}-{sha1(recognizer.encode()).hexdigest()[:8]}.npy"


@dataclass
class _Book:
    """A reader's view of one recognizer at one generation: matrix rows and who owns them."""

    generation: int
    matrix: np.ndarray  # (rows, dim) memmap of the committed rows
    row_face: np.ndarray  # (rows,) face id per row, -1 for dead rows
    row_asset: np.ndarray  # (rows,) asset id per row, -1 for dead rows
    dead: np.ndarray | None  # (rows,) bool, None when every row is live
    live: int
    on_device: object = None  # the matrix as a torch tensor on a CUDA device, once uploaded


class FaceIndex:
    """The index under `root`; a writer unless `readonly`.

    `dtype` is the format of embedding files this writer creates (existing files keep
    theirs). `device`, when given, runs searches with torch there (a CUDA GPU; the CPU works
    too); otherwise numpy on the CPU.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        readonly: bool = False,
        dtype: EmbeddingDtype = "float32",
        device: torch.device | None = None,
        block_rows: int = DEFAULT_BLOCK_ROWS,
    ) -> None:
        if dtype not in EMBEDDING_DTYPES:
            raise OptionError(f"unknown embedding dtype {dtype!r}: use float32 or float16")
        self.root = Path(root)
        self.readonly = readonly
        self.dtype = dtype
        self.device = device
        self.block_rows = block_rows
        self._books: dict[str, _Book] = {}
        self._lock: WriterLock | None = None
        db_path = self.root / DB_NAME
        if readonly:
            if not db_path.is_file():
                raise IndexStoreError(self.root, "no index here; build one with a writer first")
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = WriterLock(self.root / LOCK_NAME)
            self._lock.acquire()
        try:
            self._conn = connect(db_path, readonly=readonly)
            ensure_schema(self._conn, self.root, readonly=readonly)
            if not readonly:
                self._repair()
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    # -- life cycle ---------------------------------------------------------------------

    def close(self) -> None:
        self._books.clear()
        self._conn.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> FaceIndex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _repair(self) -> None:
        """Cut every embedding file back to its committed rows (debris of a crash)."""
        for recognizer, rows in self._conn.execute("SELECT recognizer, rows FROM matrices"):
            self._matrix(recognizer).repair(rows)

    # -- writing ------------------------------------------------------------------------

    def needs_indexing(
        self,
        path: Path | str,
        size: int,
        mtime_ns: int,
        sha1_fn: Callable[[], str],
        recognizer: str,
    ) -> bool:
        """Whether `path` must be (re)processed with `recognizer`.

        Unchanged size and mtime: no. Changed, but the same sha1 (a copy, a touch): no, and
        the new size and mtime are recorded (by a writer) so the hash is not computed again.
        `sha1_fn` is called only in that case, since hashing reads the whole file.
        """
        found = self._conn.execute(
            "SELECT a.id, a.size, a.mtime_ns, a.sha1, s.asset_id IS NOT NULL FROM assets a "
            "LEFT JOIN scans s ON s.asset_id = a.id AND s.recognizer = ? WHERE a.path = ?",
            (recognizer, _absolute(path)),
        ).fetchone()
        if found is None or not found[4]:
            return True
        asset_id, old_size, old_mtime, old_sha1, _ = found
        if (size, mtime_ns) == (old_size, old_mtime):
            return False
        if sha1_fn() != old_sha1:
            return True
        if not self.readonly:
            self._conn.execute(
                "UPDATE assets SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, asset_id)
            )
        return False

    def add_asset(
        self,
        asset: AssetRecord,
        faces: Sequence[DetectedFace],
        embeddings: np.ndarray,
        recognizer: str,
    ) -> int:
        """Record an image, its faces and their embeddings (row i for faces[i]); the asset id.

        One transaction. It replaces this image's earlier faces from `recognizer`; if the
        file's sha1 changed, the faces from every recognizer go (they describe old pixels).
        Embeddings are L2-normalised on the way in.
        """
        self._require_writer()
        path = _absolute(asset.path)
        if not recognizer:
            raise InputError("the recognizer name is empty: pass the model's name")
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(faces):
            raise InputError(
                f"{path}: {len(faces)} faces need a ({len(faces)}, dim) embedding array, "
                f"got shape {emb.shape}"
            )
        if not np.isfinite(emb).all():
            raise InputError(f"{path}: embeddings hold NaN or inf; the recognizer failed on it")
        rows = [_face_row(face, path) for face in faces]
        emb = l2_normalize(emb)

        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            asset_id = self._upsert_asset(asset, path)
            self._drop_faces(asset_id, recognizer)
            if rows:
                matrix, start = self._matrix_for_append(recognizer, emb.shape[1])
                # The order that makes a crash harmless: rows durable first, commit after.
                matrix.append(start, emb)
                self._record_faces(asset_id, recognizer, start, rows)
            conn.execute(
                "INSERT OR REPLACE INTO scans (asset_id, recognizer, face_count) VALUES (?, ?, ?)",
                (asset_id, recognizer, len(rows)),
            )
            self._commit()
        except BaseException:
            # A failed COMMIT may already have rolled back on its own.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return asset_id

    def remove_asset(self, path: Path | str) -> bool:
        """Forget an image (deleted from the library) and its faces; False if unknown."""
        self._require_writer()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = conn.execute("SELECT id FROM assets WHERE path = ?", (_absolute(path),))
            row = found.fetchone()
            if row is not None:
                self._drop_faces(row[0], None)
                conn.execute("DELETE FROM assets WHERE id = ?", (row[0],))
            self._commit()
        except BaseException:
            # A failed COMMIT may already have rolled back on its own.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return row is not None

    def _upsert_asset(self, asset: AssetRecord, path: str) -> int:
        values = (
            asset.size,
            asset.mtime_ns,
            asset.sha1,
            asset.width,
            asset.height,
            None if asset.taken_at is None else asset.taken_at.isoformat(),
        )
        found = self._conn.execute("SELECT id, sha1 FROM assets WHERE path = ?", (path,))
        row = found.fetchone()
        if row is None:
            cur = self._conn.execute(
                "INSERT INTO assets (size, mtime_ns, sha1, width, height, taken_at, path) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*values, path),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid
        asset_id, old_sha1 = row
        if old_sha1 != asset.sha1:
            self._drop_faces(asset_id, None)
            self._conn.execute("DELETE FROM scans WHERE asset_id = ?", (asset_id,))
        # Updated in place: the id, and any Immich asset id the sync attached, stay.
        self._conn.execute(
            "UPDATE assets SET size = ?, mtime_ns = ?, sha1 = ?, width = ?, height = ?, "
            "taken_at = ? WHERE id = ?",
            (*values, asset_id),
        )
        return asset_id

    def _drop_faces(self, asset_id: int, recognizer: str | None) -> None:
        """Delete an asset's faces (of one recognizer, or all); their rows become dead."""
        where, args = "asset_id = ?", [asset_id]
        if recognizer is not None:
            where, args = where + " AND recognizer = ?", [asset_id, recognizer]
        counts = self._conn.execute(
            f"SELECT recognizer, COUNT(*) FROM faces WHERE {where} GROUP BY recognizer", args
        ).fetchall()
        self._conn.execute(f"DELETE FROM faces WHERE {where}", args)
        self._conn.executemany(
            "UPDATE matrices SET dead_rows = dead_rows + ?, generation = generation + 1 "
            "WHERE recognizer = ?",
            [(count, name) for name, count in counts],
        )

    def _matrix_for_append(self, recognizer: str, dim: int) -> tuple[EmbeddingMatrix, int]:
        """The recognizer's file and its committed row count, creating both on first use."""
        found = self._conn.execute(
            "SELECT dim, rows FROM matrices WHERE recognizer = ?", (recognizer,)
        ).fetchone()
        if found is None:
            file = matrix_file_name(recognizer)
            self._conn.execute(
                "INSERT INTO matrices (recognizer, file, dim, dtype, rows) VALUES (?, ?, ?, ?, 0)",
                (recognizer, file, dim, self.dtype),
            )
            matrix = EmbeddingMatrix(self.root / file, dim, self.dtype)
            matrix.create()
            return matrix, 0
        known_dim, rows = found
        if known_dim != dim:
            raise IndexStoreError(
                self.root,
                f"recognizer {recognizer!r} has {known_dim}-d embeddings here, got {dim}-d: "
                "a different model under the same name? index it under its own name",
            )
        return self._matrix(recognizer), rows

    def _record_faces(
        self, asset_id: int, recognizer: str, start: int, rows: list[tuple[object, ...]]
    ) -> None:
        self._conn.executemany(
            "INSERT INTO faces (asset_id, recognizer, row, x1, y1, x2, y2, landmarks, score, "
            "detector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(asset_id, recognizer, start + i, *row) for i, row in enumerate(rows)],
        )
        self._conn.execute(
            "UPDATE matrices SET rows = ?, generation = generation + 1 WHERE recognizer = ?",
            (start + len(rows), recognizer),
        )

    def _commit(self) -> None:
        # Apart from add_asset so that tests can stop a process just before the commit.
        self._conn.execute("COMMIT")

    # -- reading ------------------------------------------------------------------------

    def search(self, query: np.ndarray, recognizer: str, k: int = 10) -> list[FaceHit]:
        """The k library faces most similar to one query embedding (d,), best first."""
        q = np.asarray(query, dtype=np.float32)
        if q.ndim != 1:
            raise InputError(
                f"search takes one (d,) embedding, got shape {q.shape}; use search_batch"
            )
        return self.search_batch(q[None, :], recognizer, k)[0]

    def search_batch(
        self, queries: np.ndarray, recognizer: str, k: int = 10
    ) -> list[list[FaceHit]]:
        """`search` for each row of a (q, d) array, in one pass over the matrix."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 2:
            raise InputError(f"search_batch takes a (q, d) array, got shape {q.shape}")
        if k < 1:
            raise OptionError(f"k must be at least 1, got {k}")
        with self._snapshot():
            book = self._book(recognizer, q.shape[1])
            if book is None or book.live == 0 or q.shape[0] == 0:
                return [[] for _ in range(q.shape[0])]
            scores, rows = self._topk(l2_normalize(q), book, k)
            face_ids = np.where(rows >= 0, book.row_face[np.maximum(rows, 0)], -1)
            details = self._face_details(np.unique(face_ids[face_ids >= 0]).tolist())
        return [
            [
                FaceHit(int(f), *details[int(f)], score=float(s))
                for f, s in zip(face_row, score_row, strict=True)
                if f >= 0
            ]
            for face_row, score_row in zip(face_ids, scores, strict=True)
        ]

    def similar_images(
        self,
        query_embeddings: np.ndarray,
        recognizer: str,
        k: int = 10,
        *,
        exclude_path: Path | str | None = None,
    ) -> list[ImageHit]:
        """Library images ranked by their best face-to-face cosine with any query face.

        `query_embeddings` (n, d) are the faces of the query image; `exclude_path` (usually
        the query image itself, when it is in the library) never comes back.
        """
        q = np.asarray(query_embeddings, dtype=np.float32)
        if q.ndim != 2:
            raise InputError(f"similar_images takes (n, d) face embeddings, got {q.shape}")
        if k < 1:
            raise OptionError(f"k must be at least 1, got {k}")
        with self._snapshot():
            book = self._book(recognizer, q.shape[1])
            if book is None or book.live == 0 or q.shape[0] == 0:
                return []
            best, which = best_match_per_row(
                l2_normalize(q), book.matrix, block_rows=self.block_rows, exclude=book.dead
            )
            groups = book.row_asset
            if exclude_path is not None:
                found = self._conn.execute(
                    "SELECT id FROM assets WHERE path = ?", (_absolute(exclude_path),)
                ).fetchone()
                if found is not None:
                    groups = np.where(groups == found[0], -1, groups)
            asset_ids, values, rows = top_groups(best, groups, k)
            paths = self._asset_paths(asset_ids.tolist())
        return [
            ImageHit(int(a), paths[int(a)], float(v), int(which[r]), int(book.row_face[r]))
            for a, v, r in zip(asset_ids, values, rows, strict=True)
        ]

    def faces_of(self, path: Path | str, recognizer: str | None = None) -> list[StoredFace]:
        """The faces recorded for an image (of one recognizer, or all), in insertion order."""
        sql = (
            "SELECT f.id, f.asset_id, f.recognizer, f.x1, f.y1, f.x2, f.y2, f.landmarks, "
            "f.score, f.detector, f.immich_face_id, f.immich_person_id "
            "FROM faces f JOIN assets a ON a.id = f.asset_id WHERE a.path = ?"
        )
        args: list[object] = [_absolute(path)]
        if recognizer is not None:
            sql += " AND f.recognizer = ?"
            args.append(recognizer)
        return [
            StoredFace(
                face_id=r[0],
                asset_id=r[1],
                recognizer=r[2],
                box_xyxy=(r[3], r[4], r[5], r[6]),
                landmarks_xy=np.frombuffer(r[7], dtype="<f4").reshape(5, 2).copy(),
                score=r[8],
                detector=r[9],
                immich_face_id=r[10],
                immich_person_id=r[11],
            )
            for r in self._conn.execute(sql + " ORDER BY f.id", args)
        ]

    def embeddings_of(self, face_ids: Sequence[int], recognizer: str) -> np.ndarray:
        """(len(face_ids), dim) float32 embeddings of faces of `recognizer`, in that order."""
        if not face_ids:
            return np.zeros((0, 0), np.float32)
        rows = dict(
            self._conn.execute(
                f"SELECT id, row FROM faces WHERE recognizer = ? AND id IN "
                f"({','.join('?' * len(face_ids))})",
                (recognizer, *face_ids),
            ).fetchall()
        )
        missing = [i for i in face_ids if i not in rows]
        if missing:
            raise IndexStoreError(
                self.root, f"faces {missing[:5]} have no {recognizer!r} embedding in the index"
            )
        dim = self._conn.execute(
            "SELECT dim FROM matrices WHERE recognizer = ?", (recognizer,)
        ).fetchone()[0]
        book = self._book(recognizer, dim)
        if book is None:  # unreachable: faces exist, so the file does
            raise IndexStoreError(self.root, f"no embedding file for {recognizer!r}")
        return np.asarray(book.matrix[[rows[i] for i in face_ids]], dtype=np.float32)

    def link_immich(
        self,
        path: Path | str,
        immich_asset_id: str,
        face_links: Mapping[int, tuple[str | None, str | None]],
    ) -> None:
        """Record which Immich asset an image is, and for each of its faces (by face id) the
        Immich face it matched and that face's person (None where there is none)."""
        self._require_writer()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            asset_id = conn.execute(
                "SELECT id FROM assets WHERE path = ?", (_absolute(path),)
            ).fetchone()
            if asset_id is None:
                raise IndexStoreError(self.root, f"{path} is not indexed: index it first")
            conn.execute(
                "UPDATE assets SET immich_asset_id = ? WHERE id = ?", (immich_asset_id, asset_id[0])
            )
            conn.execute(
                "UPDATE faces SET immich_face_id = NULL, immich_person_id = NULL "
                "WHERE asset_id = ?",
                (asset_id[0],),
            )
            conn.executemany(
                "UPDATE faces SET immich_face_id = ?, immich_person_id = ? "
                "WHERE id = ? AND asset_id = ?",
                [(f, p, face_id, asset_id[0]) for face_id, (f, p) in face_links.items()],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def set_people(self, names: Mapping[str, str]) -> None:
        """Replace the Immich people known to the index (person id -> name, "" if unnamed)."""
        self._require_writer()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM people")
            conn.executemany("INSERT INTO people VALUES (?, ?)", list(names.items()))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def paths_with_sha1(self, sha1_hex: str) -> list[str]:
        """Indexed images whose content has this SHA-1 (Immich's checksum), oldest first."""
        return [
            p
            for (p,) in self._conn.execute(
                "SELECT path FROM assets WHERE sha1 = ? ORDER BY id", (sha1_hex.lower(),)
            )
        ]

    def people(self) -> dict[str, str]:
        """Immich person id -> name ("" for unnamed), as of the last sync."""
        return dict(self._conn.execute("SELECT immich_person_id, name FROM people"))

    def immich_people_of(self, face_ids: Sequence[int]) -> dict[int, str]:
        """Face id -> Immich person id, for those of `face_ids` linked to a person."""
        if not face_ids:
            return {}
        return dict(
            self._conn.execute(
                f"SELECT id, immich_person_id FROM faces WHERE immich_person_id IS NOT NULL "
                f"AND id IN ({','.join('?' * len(face_ids))})",
                tuple(face_ids),
            ).fetchall()
        )

    def asset(self, path: Path | str) -> AssetRecord | None:
        """The recorded metadata of an image, or None if it was never indexed."""
        row = self._conn.execute(
            "SELECT path, size, mtime_ns, sha1, width, height, taken_at FROM assets WHERE path = ?",
            (_absolute(path),),
        ).fetchone()
        if row is None:
            return None
        taken = None if row[6] is None else datetime.fromisoformat(row[6])
        return AssetRecord(*row[:6], taken_at=taken)

    def stats(self) -> IndexStats:
        with self._snapshot():
            conn = self._conn
            assets = conn.execute("SELECT COUNT(*) FROM assets").fetchone()[0]
            faces = dict(conn.execute("SELECT recognizer, COUNT(*) FROM faces GROUP BY 1"))
            scanned = dict(conn.execute("SELECT recognizer, COUNT(*) FROM scans GROUP BY 1"))
            matrices = {
                r[0]: r[1:]
                for r in conn.execute(
                    "SELECT recognizer, dim, dtype, rows, dead_rows FROM matrices"
                )
            }
        recognizers = {}
        for name in sorted(set(scanned) | set(matrices)):
            # A recognizer whose images had no face yet has no file: no dim, no dtype.
            dim, dtype, rows, dead_rows = matrices.get(name, (None, None, 0, 0))
            recognizers[name] = RecognizerStats(
                dim=dim,
                dtype=dtype,
                faces=faces.get(name, 0),
                rows=rows,
                dead_rows=dead_rows,
                assets=scanned.get(name, 0),
            )
        return IndexStats(assets=assets, faces=sum(faces.values()), recognizers=recognizers)

    # -- internals ----------------------------------------------------------------------

    def _require_writer(self) -> None:
        if self.readonly:
            raise IndexStoreError(self.root, "opened read-only; open it without readonly to write")

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read transaction: everything read inside sees the same committed state."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    def _matrix(self, recognizer: str) -> EmbeddingMatrix:
        file, dim, dtype = self._conn.execute(
            "SELECT file, dim, dtype FROM matrices WHERE recognizer = ?", (recognizer,)
        ).fetchone()
        return EmbeddingMatrix(self.root / file, dim, dtype)

    def _book(self, recognizer: str, query_dim: int) -> _Book | None:
        """The current `_Book` of a recognizer (reloaded when its generation moved)."""
        found = self._conn.execute(
            "SELECT file, dim, dtype, rows, generation FROM matrices WHERE recognizer = ?",
            (recognizer,),
        ).fetchone()
        if found is None:
            scanned = self._conn.execute(
                "SELECT 1 FROM scans WHERE recognizer = ? LIMIT 1", (recognizer,)
            ).fetchone()
            if scanned is not None:
                return None  # indexed, but no image had a face yet
            known = [r[0] for r in self._conn.execute("SELECT recognizer FROM matrices")]
            raise IndexStoreError(
                self.root,
                f"no embeddings from recognizer {recognizer!r} (the index has "
                f"{', '.join(map(repr, known)) or 'none'}); searches never mix models: embed "
                "the query with a model the library was indexed with",
            )
        file, dim, dtype, rows, generation = found
        if query_dim != dim:
            raise IndexStoreError(
                self.root,
                f"the query has {query_dim} dimensions but {recognizer!r} embeddings have "
                f"{dim}: embed the query with {recognizer!r}",
            )
        book = self._books.get(recognizer)
        if book is not None and book.generation == generation:
            return book
        row_face = np.full(rows, -1, dtype=np.int64)
        row_asset = np.full(rows, -1, dtype=np.int64)
        live = self._conn.execute(
            "SELECT row, id, asset_id FROM faces WHERE recognizer = ?", (recognizer,)
        ).fetchall()
        if live:
            table = np.array(live, dtype=np.int64)
            row_face[table[:, 0]] = table[:, 1]
            row_asset[table[:, 0]] = table[:, 2]
        dead = row_face < 0
        book = _Book(
            generation=generation,
            matrix=EmbeddingMatrix(self.root / file, dim, dtype).view(rows),
            row_face=row_face,
            row_asset=row_asset,
            dead=dead if dead.any() else None,
            live=len(live),
        )
        self._books[recognizer] = book
        return book

    def _topk(self, q: np.ndarray, book: _Book, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.device is None:
            return cosine_topk(q, book.matrix, k, block_rows=self.block_rows, exclude=book.dead)
        import torch

        from engine.index.topk_torch import cosine_topk_torch

        matrix: np.ndarray | torch.Tensor = book.matrix
        if self.device.type != "cpu":
            # Upload once per generation; every later search reads GPU memory only.
            if book.on_device is None:
                book.on_device = torch.from_numpy(book.matrix).to(self.device)
            assert isinstance(book.on_device, torch.Tensor)
            matrix = book.on_device
        return cosine_topk_torch(
            q, matrix, k, device=self.device, block_rows=self.block_rows, exclude=book.dead
        )

    def _face_details(self, face_ids: list[int]) -> dict[int, tuple[int, str, tuple[float, ...]]]:
        out: dict[int, tuple[int, str, tuple[float, ...]]] = {}
        for i in range(0, len(face_ids), _SQL_CHUNK):
            chunk = face_ids[i : i + _SQL_CHUNK]
            for fid, aid, path, *box in self._conn.execute(
                "SELECT f.id, f.asset_id, a.path, f.x1, f.y1, f.x2, f.y2 FROM faces f "
                f"JOIN assets a ON a.id = f.asset_id WHERE f.id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                out[fid] = (aid, path, tuple(box))
        return out

    def _asset_paths(self, asset_ids: list[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for i in range(0, len(asset_ids), _SQL_CHUNK):
            chunk = asset_ids[i : i + _SQL_CHUNK]
            out.update(
                self._conn.execute(
                    f"SELECT id, path FROM assets WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
            )
        return out


def _absolute(path: Path | str) -> str:
    text = os.fspath(path)
    if not os.path.isabs(text):
        raise InputError(f"index paths are absolute; got {text!r} (resolve it first)")
    return text


def _face_row(face: DetectedFace, path: str) -> tuple[object, ...]:
    """A face's columns after `row`: box, landmarks (10 little-endian float32), score, detector."""
    landmarks = np.asarray(face.landmarks_xy, dtype="<f4")
    if landmarks.shape != (5, 2) or len(face.box_xyxy) != 4:
        raise InputError(
            f"{path}: a face needs a 4-number box and (5, 2) landmarks, got "
            f"{len(face.box_xyxy)} numbers and shape {landmarks.shape}"
        )
    x1, y1, x2, y2 = (float(v) for v in face.box_xyxy)
    return (x1, y1, x2, y2, landmarks.tobytes(), float(face.score), face.detector)
