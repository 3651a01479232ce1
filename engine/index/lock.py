"""One writer per index: an advisory lock on `index.lock`, held while the writer is open.

`flock` belongs to the open file, so the kernel drops it when the process dies, even by
SIGKILL: a crashed indexer never leaves a stale lock behind. (POSIX only; AMP runs on Linux.)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from engine.errors import IndexStoreError


class WriterLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise IndexStoreError(
                self.path.parent,
                f"another process (pid {holder}) has it open for writing; wait for it to "
                "finish, or open the index read-only to search meanwhile",
            ) from None
        # The pid is only for that message; the lock itself is the flock.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
