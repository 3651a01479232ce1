from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ImageReadError
from engine.io.discover import find_images


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_walks_folders_recursively_sorted_skipping_hidden(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "b.JPG",
        "a.png",
        "notes.txt",
        ".hidden.jpg",
        "sub/c.TIFF",
        "sub/d.webp",
        "sub/e.bmp",
        "sub/f.jpeg",
        "sub/g.tif",
        ".cache/x.jpg",
        "z/.git/y.png",
        "z/h.Jpg",
    )
    found = find_images([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.png",
        "b.JPG",
        "sub/c.TIFF",
        "sub/d.webp",
        "sub/e.bmp",
        "sub/f.jpeg",
        "sub/g.tif",
        "z/h.Jpg",
    ]


def test_explicit_files_are_kept_whatever_their_suffix(tmp_path: Path) -> None:
    _touch(tmp_path, "scan.raw", ".hidden.jpg")
    found = find_images([tmp_path / "scan.raw", tmp_path / ".hidden.jpg"])
    assert found == [tmp_path / "scan.raw", tmp_path / ".hidden.jpg"]


def test_duplicates_are_listed_once_in_first_seen_order(tmp_path: Path) -> None:
    _touch(tmp_path, "a.jpg", "b.jpg")
    (tmp_path / "link.jpg").symlink_to(tmp_path / "a.jpg")
    found = find_images([tmp_path / "b.jpg", tmp_path, tmp_path / "a.jpg", Path(f"{tmp_path}/./")])
    assert found == [tmp_path / "b.jpg", tmp_path / "a.jpg"]


def test_symlinked_folders_are_not_followed(tmp_path: Path) -> None:
    _touch(tmp_path, "real/a.jpg")
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real")
    assert find_images([tmp_path / "real"]) == [tmp_path / "real" / "a.jpg"]


def test_missing_input(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file"):
        find_images([tmp_path / "nope"])


def test_empty_folder(tmp_path: Path) -> None:
    assert find_images([tmp_path]) == []
