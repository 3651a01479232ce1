"""One recognizer's embeddings: an append-only, row-major `.npy` file.

The file is a valid `.npy` at rest (`np.load(path, mmap_mode="r")` works), but the header's
row count is a convenience: the authority is the committed count the caller keeps in
SQLite. Rows past it are the debris of a crash between `append` and the commit, and
`repair` cuts them off. Readers map only committed rows, so they never see debris, and
nothing below the committed count is ever rewritten, so a reader's mapping stays valid
while a writer appends.

The header has a fixed size (`HEADER_BYTES`), so rewriting the row count never moves data.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from engine.errors import IndexStoreError

HEADER_BYTES = 128  # a multiple of 64, as the .npy format asks, with room for any row count
_MAGIC = b"\x93NUMPY\x01\x00"
_DESCR = {"float32": "<f4", "float16": "<f2"}


def npy_header(dtype: str, rows: int, dim: int) -> bytes:
    """A version-1.0 `.npy` header for a C-order (rows, dim) array, padded to HEADER_BYTES."""
    text = f"{{'descr': '{_DESCR[dtype]}', 'fortran_order': False, 'shape': ({rows}, {dim}), }}"
    body = HEADER_BYTES - len(_MAGIC) - 2
    return _MAGIC + struct.pack("<H", body) + (text.ljust(body - 1) + "\n").encode("latin1")


class EmbeddingMatrix:
    """The file of one recognizer. Holds no handle: each operation opens what it needs."""

    def __init__(self, path: Path, dim: int, dtype: str) -> None:
        self.path = path
        self.dim = dim
        self.dtype = dtype
        self.row_bytes = dim * np.dtype(dtype).itemsize

    def offset(self, row: int) -> int:
        return HEADER_BYTES + row * self.row_bytes

    def create(self) -> None:
        """Start an empty file, replacing any orphan left by a crash before its first commit."""
        with open(self.path, "wb") as f:
            f.write(npy_header(self.dtype, 0, self.dim))
            self._sync(f)
        _sync_dir(self.path.parent)

    def append(self, start_row: int, rows: np.ndarray) -> None:
        """Write `rows` from `start_row` on and make them durable before the caller commits.

        `start_row` is the committed count, not the file's end: debris from an earlier
        failed append is simply overwritten.
        """
        data = np.ascontiguousarray(rows, dtype=_DESCR[self.dtype]).tobytes()
        with open(self.path, "r+b") as f:
            self._write_rows(f, self.offset(start_row), data)
            self._write_header(f, start_row + len(rows))
            self._sync(f)

    def repair(self, committed_rows: int) -> int:
        """Cut the file back to `committed_rows` and fix its header; returns rows dropped."""
        want = self.offset(committed_rows)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = -1
        if size < want:
            raise IndexStoreError(
                self.path.parent,
                f"{self.path.name} holds {max(size - HEADER_BYTES, 0) // self.row_bytes} rows "
                f"but the index committed {committed_rows}: the file was truncated, replaced "
                "or deleted; restore it from a backup, or delete the index folder and reindex",
            )
        with open(self.path, "r+b") as f:
            header_ok = f.read(HEADER_BYTES) == npy_header(self.dtype, committed_rows, self.dim)
            if size == want and header_ok:
                return 0
            f.truncate(want)
            self._write_header(f, committed_rows)
            self._sync(f)
        return (size - want) // self.row_bytes

    def view(self, rows: int) -> np.ndarray:
        """The first `rows` rows, memory-mapped copy-on-write (never written back)."""
        if rows == 0:
            return np.empty((0, self.dim), dtype=self.dtype)
        # Mode "c" maps a read-only file too, and yields a writeable array that torch can wrap
        # without a copy; nothing in the index writes into it.
        return np.memmap(
            self.path, dtype=self.dtype, mode="c", offset=HEADER_BYTES, shape=(rows, self.dim)
        )

    # The three steps of an append, apart so that tests can stop a process between them.
    def _write_rows(self, f: BinaryIO, offset: int, data: bytes) -> None:
        f.seek(offset)
        f.write(data)

    def _write_header(self, f: BinaryIO, rows: int) -> None:
        f.seek(0)
        f.write(npy_header(self.dtype, rows, self.dim))

    def _sync(self, f: BinaryIO) -> None:
        f.flush()
        os.fsync(f.fileno())


def _sync_dir(path: Path) -> None:
    # A new file's directory entry is durable only once the directory itself is synced.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
