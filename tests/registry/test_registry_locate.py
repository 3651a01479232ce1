"""Lookup order: explicit path > $AMP_MODELS_DIR > checkout models/ > user cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from engine.errors import ModelNotFoundError
from engine.registry.locate import (
    checkout_models_dir,
    default_fetch_dir,
    find_model_file,
    find_pack_dir,
    looks_like_path,
    model_dirs,
    search_dirs,
)
from engine.registry.manifest import CHECKOUT_MANIFEST

if TYPE_CHECKING:
    from conftest import Served


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Four lookup directories in priority order, and the environment that names them."""
    dirs = {
        "env1": tmp_path / "env1",
        "env2": tmp_path / "env2",
        "checkout": tmp_path / "checkout" / "models",
        "cache": tmp_path / "xdg" / "amp" / "models",
    }
    for directory in dirs.values():
        directory.mkdir(parents=True)
    monkeypatch.setenv("AMP_MODELS_DIR", os.pathsep.join([str(dirs["env1"]), str(dirs["env2"])]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return dirs


def test_search_dirs_order(layout: dict[str, Path], tmp_path: Path) -> None:
    dirs = search_dirs(os.environ, layout["checkout"], home=tmp_path / "home")
    assert dirs == [layout["env1"], layout["env2"], layout["checkout"], layout["cache"]]


def test_cache_falls_back_to_home_and_duplicates_are_dropped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cache = home / ".cache" / "amp" / "models"
    env = {"AMP_MODELS_DIR": os.pathsep.join([str(cache), "", str(cache)])}
    assert search_dirs(env, None, home) == [cache]


def test_model_dirs_reads_the_environment(layout: dict[str, Path]) -> None:
    # This test runs from a source checkout, so its models/ directory is searched.
    assert checkout_models_dir() == CHECKOUT_MANIFEST.parent
    assert model_dirs() == [
        layout["env1"],
        layout["env2"],
        CHECKOUT_MANIFEST.parent,
        layout["cache"],
    ]
    assert default_fetch_dir() == layout["env1"]


def test_default_fetch_dir_is_the_user_cache_without_amp_models_dir(
    layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMP_MODELS_DIR")
    assert default_fetch_dir() == layout["cache"]


def test_first_directory_holding_the_file_wins(layout: dict[str, Path], served: Served) -> None:
    dirs = [layout["env1"], layout["env2"], layout["checkout"], layout["cache"]]
    for directory in dirs:
        (directory / "tiny.bin").write_bytes(b"x")
    for directory in dirs:
        assert (
            find_model_file("tiny", manifest=served.manifest, dirs=dirs) == directory / "tiny.bin"
        )
        (directory / "tiny.bin").unlink()
    with pytest.raises(ModelNotFoundError) as caught:
        find_model_file("tiny", manifest=served.manifest, dirs=dirs)
    message = str(caught.value)
    assert "amp models fetch tiny" in message
    url = served.manifest.get("tiny").files[0].url
    assert url is not None and url in message
    assert f"place it in {layout['env1']}" in message
    assert all(str(d) in message for d in dirs)
    assert "AMP_MODELS_DIR" in message


def test_an_explicit_path_wins(layout: dict[str, Path], served: Served, tmp_path: Path) -> None:
    (layout["env1"] / "tiny.bin").write_bytes(b"x")
    mine = tmp_path / "mine.bin"
    mine.write_bytes(b"y")
    dirs = [layout["env1"]]
    assert find_model_file(str(mine), manifest=served.manifest, dirs=dirs) == mine
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        find_model_file(str(tmp_path / "missing.pth"), manifest=served.manifest, dirs=dirs)


@pytest.mark.parametrize(
    ("text", "is_path"),
    [
        ("RealESRGAN_x4plus", False),
        ("buffalo_l", False),
        ("x.pth", True),
        ("a/b", True),
        ("~/m", True),
        ("./m", True),
    ],
)
def test_looks_like_path(text: str, is_path: bool) -> None:
    assert looks_like_path(text) is is_path


def test_face_pack_members_in_their_own_directory_or_flat(
    layout: dict[str, Path], served: Served
) -> None:
    dirs = [layout["env1"], layout["env2"]]
    with pytest.raises(ModelNotFoundError, match=r"extract det\.onnx, rec\.onnx into"):
        find_pack_dir("pack", manifest=served.manifest, dirs=dirs)
    flat = layout["env2"]
    for name in served.pack_members:
        (flat / name).write_bytes(b"x")
    assert find_pack_dir("pack", manifest=served.manifest, dirs=dirs) == flat
    assert find_model_file("pack", manifest=served.manifest, dirs=dirs) == flat / "det.onnx"
    nested = layout["env1"] / "pack"
    nested.mkdir()
    (nested / "det.onnx").write_bytes(b"x")
    # An incomplete pack directory is passed over for a complete one ...
    assert find_pack_dir("pack", manifest=served.manifest, dirs=dirs) == flat
    # ... but its detector is found first.
    assert find_model_file("pack", manifest=served.manifest, dirs=dirs) == nested / "det.onnx"
    (nested / "rec.onnx").write_bytes(b"x")
    assert find_pack_dir("pack", manifest=served.manifest, dirs=dirs) == nested


def test_find_pack_dir_refuses_other_kinds(served: Served) -> None:
    with pytest.raises(ModelNotFoundError, match="not a face pack"):
        find_pack_dir("tiny", manifest=served.manifest, dirs=[])
