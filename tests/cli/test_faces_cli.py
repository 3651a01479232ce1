"""`amp faces index | search | show` on the real photos, and an indexer killed mid-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from engine.cli.main import app
from engine.index.store import FaceIndex

runner = CliRunner()


@pytest.fixture(scope="module")
def models_dir(faces_dir: Path) -> Path:
    return faces_dir.parent / "models"


@pytest.fixture(scope="module")
def scrfd_args(models_dir: Path) -> list[str]:
    """SCRFD-2.5G (real weights) at 0.6, where every single-person photo has its one face,
    and dlib's recognizer: the offline pair."""
    model = models_dir / "unofficial" / "scrfd_2.5g_kps.hpc203-reexport.onnx"
    return [
        "--detector",
        "scrfd",
        "--detector-model",
        str(model),
        "--det-thresh",
        "0.6",
        "--recognizer",
        "dlib",
    ]


@pytest.fixture(scope="module")
def built_index(
    tmp_path_factory: pytest.TempPathFactory, faces_dir: Path, scrfd_args: list[str]
) -> Path:
    index = tmp_path_factory.mktemp("index")
    result = runner.invoke(
        app, ["faces", "index", str(faces_dir), "--index", str(index), *scrfd_args, "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert summary["indexed"] == 25 and summary["failed"] == 0
    return index


def test_every_single_person_photo_finds_the_same_person_first(
    built_index: Path, faces_dir: Path, scrfd_args: list[str]
) -> None:
    people = [p for p in sorted(faces_dir.iterdir()) if p.is_dir() and not p.name.startswith("_")]
    for person in people:
        for photo in sorted(person.glob("*.jpg")):
            result = runner.invoke(
                app,
                [
                    "faces",
                    "search",
                    str(photo),
                    "--index",
                    str(built_index),
                    "--top",
                    "3",
                    *scrfd_args,
                    "--json",
                ],
            )
            assert result.exit_code == 0, result.output
            hits = json.loads(result.stdout)["similar_images"]
            assert hits, photo
            assert str(photo.resolve()) not in {
                h["path"] for h in hits
            }  # the photo itself is left out
            best = Path(hits[0]["path"])
            assert best.parent.name in (person.name, "_groups"), f"{photo} -> {best}"
            if best.parent.name == "_groups":  # a group photo: it must contain this person
                assert person.name in ("barack_obama", "joe_biden"), f"{photo} -> {best}"


def test_group_photo_faces_lead_to_the_right_people(
    built_index: Path, faces_dir: Path, scrfd_args: list[str]
) -> None:
    result = runner.invoke(
        app,
        [
            "faces",
            "search",
            str(faces_dir / "_groups" / "two_people.jpg"),
            "--index",
            str(built_index),
            "--top",
            "8",
            *scrfd_args,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert len(document["faces"]) == 2
    # Each face's two best single-person photos are of one person, and the faces differ.
    by_face: dict[int, list[str]] = {}
    for hit in document["similar_images"]:  # ranked by similarity
        folder = Path(hit["path"]).parent.name
        if folder != "_groups":
            by_face.setdefault(hit["query_face"], []).append(folder)
    assert {tuple(found[:2]) for found in by_face.values()} == {
        ("barack_obama", "barack_obama"),
        ("joe_biden", "joe_biden"),
    }


def test_rerun_skips_unchanged_photos(
    built_index: Path, faces_dir: Path, scrfd_args: list[str]
) -> None:
    result = runner.invoke(
        app, ["faces", "index", str(faces_dir), "--index", str(built_index), *scrfd_args, "--json"]
    )
    summary = json.loads(result.stdout)["summary"]
    assert result.exit_code == 0 and summary["unchanged"] == 25 and summary["indexed"] == 0


def test_search_refuses_a_recognizer_the_index_does_not_hold(
    built_index: Path, faces_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    fake_arcface = tmp_path / "not_arcface.onnx"
    fake_arcface.write_bytes(b"not a model")
    result = runner.invoke(
        app,
        [
            "faces",
            "search",
            str(faces_dir / "_groups" / "two_people.jpg"),
            "--index",
            str(built_index),
            "--recognizer",
            "arcface",
            "--recognizer-model",
            str(fake_arcface),
        ],
    )
    assert result.exit_code == 1
    assert "error:" in result.stderr and "Traceback" not in result.output


def test_show_draws_the_faces(tmp_path: Path, scrfd_args: list[str]) -> None:
    import insightface

    t1 = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    out = tmp_path / "t1.faces.png"
    result = runner.invoke(
        app, ["faces", "show", str(t1), "--out", str(out), *scrfd_args[:6], "--json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert len(document["faces"]) == 6
    drawing = cv2.imread(str(out))
    original = cv2.imread(str(t1))
    assert drawing.shape == original.shape
    assert (drawing != original).any()


def _committed_photos(database: Path) -> int:
    """Photos committed so far; 0 while the indexer has not yet created its schema."""
    if not database.exists():
        return 0
    with closing(sqlite3.connect(database, timeout=5)) as db:
        try:
            return db.execute("SELECT count(*) FROM scans").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_killed_indexer_leaves_a_consistent_index_and_the_rerun_completes(
    tmp_path: Path, faces_dir: Path, scrfd_args: list[str]
) -> None:
    library = tmp_path / "library"
    shutil.copytree(faces_dir, library, ignore=shutil.ignore_patterns("*.md"))
    photos = sorted(library.rglob("*.jpg"))
    index = tmp_path / "index"
    command = [
        sys.executable,
        "-m",
        "engine",
        "faces",
        "index",
        str(library),
        "--index",
        str(index),
        *scrfd_args,
        "--json",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    committed = 0
    deadline = time.monotonic() + 120
    try:
        # The first group photo is committed, the Solvay photo (29 faces) is being embedded.
        while committed < 1 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
            committed = _committed_photos(index / "index.sqlite")
        assert process.poll() is None, "the indexer finished before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    with FaceIndex(index) as reopened:  # a writer: repairs whatever the kill left
        stats = reopened.stats()
        assert 1 <= stats.assets < len(photos)
        done_before = stats.assets
        for recognizer in stats.recognizers.values():
            assert recognizer.rows - recognizer.dead_rows == recognizer.faces

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)["summary"]
    assert summary["unchanged"] == done_before
    assert summary["indexed"] == len(photos) - done_before
    with closing(sqlite3.connect(index / "index.sqlite")) as db:
        paths = [row[0] for row in db.execute("SELECT path FROM assets")]
    assert sorted(paths) == sorted(str(p.resolve()) for p in photos)  # each exactly once
