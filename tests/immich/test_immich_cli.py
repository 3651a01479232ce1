"""`amp immich` end to end against the fake Immich over real HTTP: sync, reconcile (every
planted mistake found, nothing on the clean library), apply, identify, and clear failures."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli.main import app
from tests.immich.fake_immich import FakeImmich
from tests.immich.fixture_library import IMMICH_LIBRARY_ROOT, FixtureLibrary, build_library

runner = CliRunner()
SCRFD = "unofficial/scrfd_2.5g_kps.hpc203-reexport.onnx"


@pytest.fixture(scope="module")
def models(faces_dir: Path) -> list[str]:
    model = faces_dir.parent / "models" / SCRFD
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


def _server(library: FixtureLibrary, flavour: str = "v3.2") -> Iterator[FakeImmich]:
    server = FakeImmich(library, flavour=flavour).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def clean_server() -> Iterator[FakeImmich]:
    yield from _server(build_library("clean"))


@pytest.fixture(scope="module")
def mistakes_server() -> Iterator[FakeImmich]:
    yield from _server(build_library("with_mistakes"))


def _env(server: FakeImmich) -> dict[str, str]:
    return {"AMP_IMMICH_URL": server.url, "AMP_IMMICH_API_KEY": server.api_key}


def _run(server: FakeImmich | None, *args: str) -> tuple[int, dict, str]:
    result = runner.invoke(app, ["immich", *args], env=_env(server) if server else None)
    document = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, document, result.stderr


def _sync(server: FakeImmich, index: Path, models: list[str], *extra: str) -> dict:
    code, doc, err = _run(server, "sync", "--index", str(index), *models, "--json", *extra)
    assert code == 0, err
    return doc


@pytest.fixture(scope="module")
def clean_index(
    tmp_path_factory: pytest.TempPathFactory,
    clean_server: FakeImmich,
    models: list[str],
    faces_dir: Path,
) -> Path:
    index = tmp_path_factory.mktemp("clean") / "index"
    doc = _sync(clean_server, index, models, "--path-map", f"{IMMICH_LIBRARY_ROOT}={faces_dir}")
    assert doc["assets"] == 25 and doc["linked"] == {"path-map": 25} and doc["unlinked"] == 0
    assert doc["newly_indexed"] == 25 and doc["matched_faces"] == 56
    return index


@pytest.fixture(scope="module")
def mistakes_index(
    tmp_path_factory: pytest.TempPathFactory,
    clean_index: Path,
    mistakes_server: FakeImmich,
    models: list[str],
    faces_dir: Path,
) -> Path:
    # The same photos: reuse their analysis, so this sync only mirrors and links.
    index = tmp_path_factory.mktemp("mistakes") / "index"
    shutil.copytree(clean_index, index)
    doc = _sync(mistakes_server, index, models, "--path-map", f"{IMMICH_LIBRARY_ROOT}={faces_dir}")
    assert doc["newly_indexed"] == 0
    return index


def test_status_in_both_flavours(faces_dir: Path) -> None:
    for flavour, version in (("v2.4", "2.4.0"), ("v3.2", "3.2.2")):
        for server in _server(build_library("clean"), flavour):
            code, doc, err = _run(server, "status", "--json")
            assert code == 0, err
            assert doc["version"] == version
            assert doc["people"] >= 8 and doc["face_jobs_idle"] is True


def test_resync_is_incremental(
    clean_index: Path, clean_server: FakeImmich, models: list[str], faces_dir: Path
) -> None:
    doc = _sync(clean_server, clean_index, models)  # no path map needed: links are kept
    assert doc["linked"] == {"path-map": 25} and doc["newly_indexed"] == 0


def test_linking_by_checksum_and_by_download(
    tmp_path: Path, clean_server: FakeImmich, clean_index: Path, models: list[str]
) -> None:
    # An index that knows the files (from `amp faces index`), no path map: linked by SHA-1.
    by_checksum = tmp_path / "by-checksum"
    shutil.copytree(clean_index, by_checksum)
    (by_checksum / "immich.sqlite").unlink()
    doc = _sync(clean_server, by_checksum, models)
    assert doc["linked"] == {"checksum": 25}

    # An empty index: originals are downloaded into its cache, then analysed.
    downloaded = tmp_path / "downloaded"
    doc = _sync(clean_server, downloaded, models, "--download")
    assert doc["linked"] == {"download": 25} and doc["newly_indexed"] == 25
    assert len(list((downloaded / "originals").iterdir())) == 25


def test_reconcile_finds_nothing_on_the_clean_library(
    clean_index: Path, tmp_path: Path, models: list[str]
) -> None:
    code, doc, err = _run(
        None,
        "reconcile",
        "--index",
        str(clean_index),
        "--out",
        str(tmp_path),
        "--recognizer",
        "dlib",
        "--json",
    )
    assert code == 0, err
    assert doc["findings"] == []
    assert doc["summary"]["detection"]["precision"] == 1.0
    assert doc["summary"]["detection"]["recall"] == 1.0


def test_reconcile_finds_every_planted_mistake_and_nothing_else(
    mistakes_index: Path, mistakes_server: FakeImmich, tmp_path: Path
) -> None:
    code, doc, err = _run(
        None,
        "reconcile",
        "--index",
        str(mistakes_index),
        "--out",
        str(tmp_path),
        "--recognizer",
        "dlib",
        "--json",
    )
    assert code == 0, err
    library = mistakes_server.library
    findings = doc["findings"]
    person = library.person_named

    def found(kind: str, **ids: object) -> list[dict]:
        return [
            f
            for f in findings
            if f["kind"] == kind
            and all(
                set(v) <= set(f[k]) if isinstance(v, tuple) else f[k] == v for k, v in ids.items()
            )
        ]

    planted = {m.kind: m for m in library.planted}
    wrong = planted["wrong_person"]
    assert found(
        "reassign_face",
        immich_face_ids=wrong.face_ids,
        suggested_person_id=person("Kit Harington").id,
    )
    split = planted["split_person"]
    assert found("merge_people", person_ids=split.person_ids)
    missed = planted["missed_face"]
    assert found("missed_by_immich", asset_ids=missed.asset_ids)
    unnamed = planted["unnamed_person"]
    assert found(
        "unnamed_matches_named",
        person_ids=unnamed.person_ids,
        suggested_person_id=person("Steve Wozniak").id,
    )
    twice = planted["same_person_twice"]
    right_face = twice.face_ids[1]
    assert found(
        "reassign_face", immich_face_ids=(right_face,), suggested_person_id=person("Joe Biden").id
    ) or found("duplicate_in_photo", asset_ids=twice.asset_ids)

    # Nothing else: every finding concerns a planted mistake.
    for finding in findings:
        assert any(
            set(finding["asset_ids"]) & set(m.asset_ids)
            or set(finding["person_ids"]) & set(m.person_ids)
            for m in library.planted
        ), finding

    html = (tmp_path / "report.html").read_text()
    assert f"{mistakes_server.url}/photos/{wrong.asset_ids[0]}" in html
    assert html.count("data:image/jpeg;base64,") >= len(findings)
    assert json.loads((tmp_path / "findings.json").read_text())["findings"] == findings


def test_apply_is_a_dry_run_until_yes_and_safe_to_rerun(
    mistakes_index: Path, tmp_path: Path, faces_dir: Path, models: list[str]
) -> None:
    library = build_library("with_mistakes")
    for server in _server(library):
        index = tmp_path / "index"
        shutil.copytree(mistakes_index, index)
        _sync(server, index, models)
        out = tmp_path / "out"
        code, doc, err = _run(
            None,
            "reconcile",
            "--index",
            str(index),
            "--out",
            str(out),
            "--recognizer",
            "dlib",
            "--json",
        )
        findings_file = out / "findings.json"
        wrong = next(m for m in library.planted if m.kind == "wrong_person")
        kit = library.person_named("Kit Harington").id

        code, doc, err = _run(server, "apply", str(findings_file), "--json")
        assert code == 0, err
        assert not doc["executed"] and library.faces[wrong.face_ids[0]].person_id != kit
        assert {a["outcome"] for a in doc["actions"]} <= {"planned", "manual"}

        code, doc, err = _run(server, "apply", str(findings_file), "--yes", "--json")
        assert code == 0, err
        assert library.faces[wrong.face_ids[0]].person_id == kit
        split = next(m for m in library.planted if m.kind == "split_person")
        assert sum(p in library.people for p in split.person_ids) == 1  # merged into one
        log = [json.loads(line) for line in Path(doc["log"]).read_text().splitlines()]
        assert log and all(entry["outcome"] == "done" for entry in log)

        code, doc, err = _run(server, "apply", str(findings_file), "--yes", "--json")
        assert code == 0, err
        assert "done" not in {a["outcome"] for a in doc["actions"]}  # nothing left to do


def test_identify_names_the_people_of_a_group_photo(
    clean_index: Path, models: list[str], faces_dir: Path
) -> None:
    photo = faces_dir / "_groups" / "two_people.jpg"
    code, doc, err = _run(
        None, "identify", str(photo), "--index", str(clean_index), *models, "--json"
    )
    assert code == 0, err
    names = sorted(f["name"] for f in doc["faces"])
    assert names == ["Barack Obama", "Joe Biden"]
    for face in doc["faces"]:
        assert 1 <= len(face["photos"]) <= 10
        assert all("two_people" not in (p["path"] or "") for p in face["photos"])
        folder = "barack_obama" if face["name"] == "Barack Obama" else "joe_biden"
        assert any(folder in (p["path"] or "") for p in face["photos"])


def test_identify_by_upload_asks_immich(clean_server: FakeImmich, faces_dir: Path) -> None:
    photo = faces_dir / "barack_obama" / "obama2.jpg"
    code, doc, err = _run(clean_server, "identify", str(photo), "--upload", "--json")
    assert code == 0, err
    assert doc["method"] == "upload"
    assert [f["name"] for f in doc["faces"]] == ["Barack Obama"]
    assert 1 <= len(doc["faces"][0]["photos"]) <= 10


def test_errors_are_one_clear_line_and_never_show_the_key(
    clean_server: FakeImmich, tmp_path: Path
) -> None:
    secret = "wrong-key-0123456789abcdefghij"
    result = runner.invoke(
        app,
        ["immich", "status"],
        env={"AMP_IMMICH_URL": clean_server.url, "AMP_IMMICH_API_KEY": secret},
    )
    assert result.exit_code == 1
    assert "401" in result.stderr and "Traceback" not in result.output
    assert secret not in result.output and secret not in (result.stderr or "")

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(
        app,
        ["immich", "status"],
        env={
            "AMP_IMMICH_URL": f"http://127.0.0.1:{port}",
            "AMP_IMMICH_API_KEY": clean_server.api_key,
        },
    )
    assert result.exit_code == 1 and "cannot reach Immich" in result.stderr

    result = runner.invoke(
        app, ["immich", "reconcile", "--index", str(tmp_path / "none"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1 and "amp immich sync" in result.stderr
