"""Where the face index lives unless told: AMP_INDEX_DIR, else the user's data directory."""

from __future__ import annotations

import os
from pathlib import Path

INDEX_DIR_ENV = "AMP_INDEX_DIR"


def default_index_dir() -> Path:
    configured = os.environ.get(INDEX_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME")
    base = Path(data_home) if data_home else Path.home() / ".local" / "share"
    return base / "amp" / "index"
