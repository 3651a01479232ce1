"""Write a file so that readers see the old content or the new, never half of it."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory.

    The temporary file (`.<name>.tmp-<random>`) is flushed and fsynced, then renamed over
    `path`, and the directory is fsynced so that the rename survives a crash. On any failure
    the temporary file is removed and `path` keeps its previous content. Parent directories
    are created. OSError (disk full, permission denied...) propagates to the caller.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{secrets.token_hex(8)}")
    # os.open with mode 0o666 rather than mkstemp: the umask then decides the permissions, as
    # for any new file, instead of mkstemp's owner-only 0o600.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Some platforms (Windows) and filesystems cannot open or fsync a directory; the data is
    # already safe in the file, only the rename's durability is best effort there.
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
