from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine.io import atomic
from engine.io.atomic import write_atomic


def test_writes_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.png"
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.png"]


def test_replaces_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.png"]


def test_permissions_follow_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "out.png", b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out.png").stat().st_mode) == 0o644


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failure_leaves_target_and_no_temp(tmp_path: Path, monkeypatch, failing: str) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    seen_temp: list[str] = []

    def fail(*args: object) -> None:
        seen_temp.extend(name for name in os.listdir(tmp_path) if ".tmp-" in name)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, failing, fail)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new")

    assert seen_temp and seen_temp[0].startswith(".out.png.tmp-")  # it did use a temp file
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]


def test_target_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "out.png").mkdir()
    with pytest.raises(OSError):
        write_atomic(tmp_path / "out.png", b"new")
    assert os.listdir(tmp_path) == ["out.png"]
