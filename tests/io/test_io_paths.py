from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from engine.errors import OptionError, UnsafePathError
from engine.io.paths import file_mtime, render_output_path

TAKEN = datetime(2021, 3, 4, 5, 6, 7)


def _render(root: Path, template: str, source: str = "/photos/IMG_1.JPG", ext: str = "png"):
    return render_output_path(root, template, source=Path(source), taken_at=TAKEN, ext=ext)


def test_fields(tmp_path: Path) -> None:
    result = _render(tmp_path, "{year}/{month}/{day}/{stem}-x.{ext}/{filename}")
    assert result == tmp_path.resolve() / "2021/03/04/IMG_1-x.png/IMG_1.png"


def test_year_is_four_digits(tmp_path: Path) -> None:
    result = render_output_path(
        tmp_path, "{year}/{filename}", source=Path("a.jpg"), taken_at=datetime(987, 1, 2), ext="jpg"
    )
    assert result == tmp_path.resolve() / "0987" / "a.jpg"


def test_result_is_absolute_for_relative_root(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert _render(Path("out"), "{filename}") == tmp_path.resolve() / "out" / "IMG_1.png"


@pytest.mark.parametrize("template", ["{name}", "{0}", "{}", "{stem.upper}", "{stem[0]}"])
def test_unknown_field(tmp_path: Path, template: str) -> None:
    with pytest.raises(OptionError, match=r"\{year\}, \{month\}.*\{ext\}"):
        _render(tmp_path, template)


@pytest.mark.parametrize("template", ["{year", "year}", "{year:>6}", "{stem!r}", ""])
def test_malformed_template(tmp_path: Path, template: str) -> None:
    with pytest.raises(OptionError):
        _render(tmp_path, template)


@pytest.mark.parametrize(
    "template",
    [
        "../x/{filename}",
        "/abs/{filename}",
        "a/../../{filename}",
        "a//{filename}",
        "./{filename}",
        "{year}/",
        "a/./{filename}",
    ],
)
def test_template_cannot_leave_root(tmp_path: Path, template: str) -> None:
    with pytest.raises(UnsafePathError):
        _render(tmp_path, template)


@pytest.mark.parametrize(
    ("source", "template"),
    [("/p/..", "{stem}/{filename}"), ("/p/..jpg", "{stem}/x"), ("/p/a\x00b.jpg", "{filename}")],
)
def test_substituted_names_cannot_leave_root(tmp_path: Path, source: str, template: str) -> None:
    with pytest.raises(UnsafePathError):
        _render(tmp_path, template, source=source)


def test_dotted_names_are_fine_as_file_names(tmp_path: Path) -> None:
    # "..jpg" has stem "."; as part of a file name, "..png" is harmless.
    assert _render(tmp_path, "{filename}", source="/p/..jpg") == tmp_path.resolve() / "..png"


def test_symlinked_folder_leaving_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="symlink"):
        _render(root, "escape/{filename}")


def test_symlinked_file_leaving_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "IMG_1.png").symlink_to(tmp_path / "victim.png")
    with pytest.raises(UnsafePathError):
        _render(root, "{filename}")


def test_symlink_inside_root_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert _render(tmp_path, "alias/{filename}") == tmp_path.resolve() / "alias" / "IMG_1.png"


def test_root_reached_through_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert _render(tmp_path / "link", "{filename}") == tmp_path.resolve() / "real" / "IMG_1.png"


def test_file_mtime_is_local_time(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    stamp = datetime(2020, 1, 2, 3, 4, 5).timestamp()
    os.utime(path, (stamp, stamp))
    assert file_mtime(path) == datetime(2020, 1, 2, 3, 4, 5)
