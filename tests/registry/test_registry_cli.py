"""`amp models list | fetch | verify` through typer's CliRunner, against the local server."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner, Result

from engine.cli.models import app

if TYPE_CHECKING:
    from conftest import FileServer, Served


@pytest.fixture
def env(served: Served, tmp_path: Path) -> dict[str, str]:
    """The test manifest, one models directory and a private user cache."""
    return {
        "AMP_MANIFEST": str(served.manifest_path),
        "AMP_MODELS_DIR": str(tmp_path / "models"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def test_fetch_into_the_first_models_dir_then_list(env: dict[str, str]) -> None:
    result = run(env, "fetch", "tiny", "pack", "--json")
    assert result.exit_code == 0, result.output
    models = Path(env["AMP_MODELS_DIR"])
    fetched = json.loads(result.stdout)
    assert fetched == [
        {"name": "tiny", "paths": [str(models / "tiny.bin")]},
        {"name": "pack", "paths": [str(models / "pack" / n) for n in ("det.onnx", "rec.onnx")]},
    ]
    listed = json.loads(run(env, "list", "--json").stdout)
    assert [(m["name"], m["status"], m["location"]) for m in listed] == [
        ("tiny", "present", str(models / "tiny.bin")),
        ("pack", "present", str(models / "pack")),
    ]


def test_fetch_prints_paths_and_honours_dest(env: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "elsewhere"
    result = run(env, "fetch", "tiny", "--dest", str(dest))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(dest / "tiny.bin")
    assert (dest / "tiny.bin").is_file()


def test_list_table_says_not_downloaded(env: dict[str, str]) -> None:
    result = run(env, "list")
    assert result.exit_code == 0, result.output
    assert "tiny" in result.stdout and "not downloaded" in result.stdout


def test_fetch_offline_is_one_line_and_exit_1(
    env: dict[str, str], served: Served, file_server: FileServer
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    served.manifest_path.write_text(
        served.manifest_path.read_text().replace(file_server.base_url, dead)
    )
    result = run(env, "fetch", "tiny")
    assert result.exit_code == 1
    assert result.stdout == ""
    message = " ".join(result.stderr.split())  # rich wraps long lines for the terminal width
    assert message.startswith("error: cannot download")
    assert "by hand" in message


def test_fetch_unknown_model(env: dict[str, str]) -> None:
    result = run(env, "fetch", "nope")
    assert result.exit_code == 1
    assert "unknown model 'nope'" in result.stderr


def test_verify_exit_codes(env: dict[str, str], served: Served) -> None:
    models = Path(env["AMP_MODELS_DIR"])
    models.mkdir()
    missing = run(env, "verify", "--json")
    assert missing.exit_code == 0, missing.output
    assert {r["status"] for r in json.loads(missing.stdout)} == {"missing"}

    (models / "tiny.bin").write_bytes(served.tiny)
    ok = run(env, "verify", "tiny")
    assert ok.exit_code == 0, ok.output
    assert "ok" in ok.stdout

    (models / "tiny.bin").write_bytes(b"tampered")
    bad = run(env, "verify", "tiny", "--json")
    assert bad.exit_code == 1
    [row] = json.loads(bad.stdout)
    assert row["status"] == "mismatch"
    assert "differ from the official release" in bad.stderr


def test_verify_the_official_yunet_with_the_real_manifest(
    official_yunet: Path, tmp_path: Path
) -> None:
    env = {
        "AMP_MANIFEST": None,  # the built-in manifest
        "AMP_MODELS_DIR": str(official_yunet.parent),
        "XDG_CACHE_HOME": str(tmp_path),
    }
    result = CliRunner().invoke(app, ["verify", "face_detection_yunet_2023mar", "--json"], env=env)
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["status"] == "ok"
    assert row["path"] == str(official_yunet)


def test_every_option_has_help() -> None:
    for command in ("list", "fetch", "verify"):
        result = CliRunner().invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert "--json" in result.stdout and "Write one JSON document" in result.stdout
