"""fetch_model and verify_model against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import socket
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from engine.errors import ModelChecksumError, ModelDownloadError
from engine.registry.download import CHUNK_BYTES, fetch_model, sha256_file, verify_model
from engine.registry.manifest import load_manifest

if TYPE_CHECKING:
    from conftest import FileServer, Served


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_full_download_follows_the_redirect(
    served: Served, file_server: FileServer, tmp_path: Path
) -> None:
    seen: list[tuple[str, int, int | None]] = []
    dest = tmp_path / "models"
    paths = fetch_model(
        served.manifest.get("tiny"), dest, progress=lambda *event: seen.append(event)
    )
    assert paths == [dest / "tiny.bin"]
    assert paths[0].read_bytes() == served.tiny
    assert sorted(p.name for p in dest.iterdir()) == ["tiny.bin"]  # no .part left
    assert [r.path for r in file_server.requests] == [
        "/releases/download/v1/tiny.bin",
        "/objects/tiny.bin",
    ]
    assert file_server.requests[-1].range is None
    assert seen[0] == ("tiny.bin", 0, len(served.tiny))
    assert seen[-1] == ("tiny.bin", len(served.tiny), len(served.tiny))


def test_a_verified_file_is_not_downloaded_again(
    served: Served, file_server: FileServer, tmp_path: Path
) -> None:
    fetch_model(served.manifest.get("tiny"), tmp_path)
    file_server.requests.clear()
    assert fetch_model(served.manifest.get("tiny"), tmp_path) == [tmp_path / "tiny.bin"]
    assert file_server.requests == []


def test_a_corrupt_final_file_is_replaced(served: Served, tmp_path: Path) -> None:
    (tmp_path / "tiny.bin").write_bytes(b"corrupt")
    fetch_model(served.manifest.get("tiny"), tmp_path)
    assert (tmp_path / "tiny.bin").read_bytes() == served.tiny


def test_resume_from_a_part_file_sends_a_range_request(
    served: Served, file_server: FileServer, tmp_path: Path
) -> None:
    done = CHUNK_BYTES + 7
    (tmp_path / "tiny.bin.part").write_bytes(served.tiny[:done])
    fetch_model(served.manifest.get("tiny"), tmp_path)
    assert (tmp_path / "tiny.bin").read_bytes() == served.tiny
    assert file_server.file_requests()[-1].range == f"bytes={done}-"


def test_an_interrupted_download_resumes_on_the_next_fetch(
    served: Served, file_server: FileServer, tmp_path: Path
) -> None:
    file_server.cut_next_after = CHUNK_BYTES + 100
    with pytest.raises(ModelDownloadError, match="run the command again to resume"):
        fetch_model(served.manifest.get("tiny"), tmp_path)
    part = tmp_path / "tiny.bin.part"
    assert 0 < part.stat().st_size < len(served.tiny)
    assert not (tmp_path / "tiny.bin").exists()
    kept = part.stat().st_size
    fetch_model(served.manifest.get("tiny"), tmp_path)
    assert file_server.file_requests()[-1].range == f"bytes={kept}-"
    assert (tmp_path / "tiny.bin").read_bytes() == served.tiny


def test_a_server_ignoring_range_restarts_from_zero(
    served: Served, file_server: FileServer, tmp_path: Path
) -> None:
    file_server.ignore_range = True
    # Wrong bytes: appending the full response to them would fail the checksum.
    (tmp_path / "tiny.bin.part").write_bytes(b"\0" * 1000)
    fetch_model(served.manifest.get("tiny"), tmp_path)
    assert file_server.file_requests()[-1].range == "bytes=1000-"
    assert (tmp_path / "tiny.bin").read_bytes() == served.tiny


def test_416_discards_the_part_and_restarts(
    served: Served, file_server: FileServer, tmp_path: Path
) -> None:
    # Without a pinned size, a .part as long as the file can only be settled by the server.
    entry = served.manifest.get("tiny")
    unsized = entry.model_copy(
        update={"files": (entry.files[0].model_copy(update={"size": None}),)}
    )
    (tmp_path / "tiny.bin.part").write_bytes(b"\0" * (len(served.tiny) + 5))
    fetch_model(unsized, tmp_path)
    assert [r.range for r in file_server.file_requests()] == [
        f"bytes={len(served.tiny) + 5}-",
        None,
    ]
    assert (tmp_path / "tiny.bin").read_bytes() == served.tiny


def test_checksum_mismatch_leaves_no_file(
    served: Served, file_server: FileServer, tmp_path: Path
) -> None:
    tampered = bytearray(served.tiny)
    tampered[12345] ^= 0xFF
    file_server.files[served.tiny_path] = bytes(tampered)
    with pytest.raises(ModelChecksumError) as caught:
        fetch_model(served.manifest.get("tiny"), tmp_path)
    assert caught.value.actual == hashlib.sha256(tampered).hexdigest()
    assert list(tmp_path.iterdir()) == []


def test_a_longer_file_is_cut_off_and_rejected(
    served: Served, file_server: FileServer, tmp_path: Path
) -> None:
    file_server.files[served.tiny_path] = served.tiny + b"\0" * (4 * CHUNK_BYTES)
    with pytest.raises(ModelChecksumError):
        fetch_model(served.manifest.get("tiny"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_no_network_says_how_to_place_the_file_by_hand(served: Served, tmp_path: Path) -> None:
    entry = served.manifest.get("tiny")
    url = f"http://127.0.0.1:{_free_port()}/tiny.bin"
    offline = entry.model_copy(update={"files": (entry.files[0].model_copy(update={"url": url}),)})
    with pytest.raises(ModelDownloadError) as caught:
        fetch_model(offline, tmp_path / "models")
    message = str(caught.value)
    assert url in message
    assert "by hand" in message
    assert entry.files[0].sha256 in message
    assert str(tmp_path / "models" / "tiny.bin") in message
    assert "resume" not in message  # nothing was received


def test_http_errors_are_download_errors(
    served: Served, file_server: FileServer, tmp_path: Path
) -> None:
    del file_server.files[served.tiny_path]
    with pytest.raises(ModelDownloadError, match="HTTP 404.*by hand"):
        fetch_model(served.manifest.get("tiny"), tmp_path)


def test_pack_is_extracted_and_its_members_verified(
    served: Served, file_server: FileServer, tmp_path: Path
) -> None:
    entry = served.manifest.get("pack")
    paths = fetch_model(entry, tmp_path)
    pack_dir = tmp_path / "pack"
    assert paths == [pack_dir / "det.onnx", pack_dir / "rec.onnx"]
    assert {p.name: p.read_bytes() for p in pack_dir.iterdir()} == served.pack_members
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pack"]  # no archive, no staging
    assert all(r.ok for r in verify_model(entry, [tmp_path]))
    file_server.requests.clear()
    assert fetch_model(entry, tmp_path) == paths
    assert file_server.requests == []


def test_a_pack_with_a_corrupt_member_is_replaced_whole(served: Served, tmp_path: Path) -> None:
    pack_dir = tmp_path / "pack"
    pack_dir.mkdir()
    (pack_dir / "det.onnx").write_bytes(b"corrupt")
    fetch_model(served.manifest.get("pack"), tmp_path)
    assert {p.name: p.read_bytes() for p in pack_dir.iterdir()} == served.pack_members
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pack"]


def test_a_wrong_member_fails_and_installs_nothing(
    served: Served, file_server: FileServer, tmp_path: Path
) -> None:
    members = dict(served.pack_members, **{"rec.onnx": b"x" * len(served.pack_members["rec.onnx"])})
    file_server.files[served.pack_path] = _zip(members)
    with pytest.raises(ModelChecksumError, match="rec.onnx"):
        fetch_model(served.manifest.get("pack"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_member_fails(served: Served, file_server: FileServer, tmp_path: Path) -> None:
    file_server.files[served.pack_path] = _zip({"det.onnx": served.pack_members["det.onnx"]})
    with pytest.raises(ModelDownloadError, match="no member rec.onnx"):
        fetch_model(served.manifest.get("pack"), tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "evil", ["../evil.onnx", "/tmp/evil.onnx", "pack/../../evil.onnx", "C:\\evil.onnx"]
)
def test_zip_slip_is_rejected(
    served: Served, file_server: FileServer, tmp_path: Path, evil: str
) -> None:
    file_server.files[served.pack_path] = _zip(served.pack_members | {evil: b"pwned"})
    dest = tmp_path / "a" / "b"
    with pytest.raises(ModelDownloadError, match="outside"):
        fetch_model(served.manifest.get("pack"), dest)
    assert list(dest.iterdir()) == []
    assert not list(tmp_path.rglob("evil.onnx"))


def test_not_a_zip(served: Served, file_server: FileServer, tmp_path: Path) -> None:
    file_server.files[served.pack_path] = b"<html>rate limited</html>"
    with pytest.raises(ModelDownloadError, match="not a valid zip archive"):
        fetch_model(served.manifest.get("pack"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_verify_reports_ok_mismatch_and_missing(served: Served, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    second.mkdir()
    (second / "tiny.bin").write_bytes(served.tiny)
    tiny = served.manifest.get("tiny")
    [result] = verify_model(tiny, [first, second])
    assert (result.status, result.path, result.ok) == ("ok", second / "tiny.bin", True)
    first.mkdir()
    (first / "tiny.bin").write_bytes(b"other")
    [result] = verify_model(tiny, [first, second])
    assert (result.status, result.path, result.ok) == ("mismatch", first / "tiny.bin", False)
    assert result.actual_sha256 == hashlib.sha256(b"other").hexdigest()
    assert result.expected_sha256 == tiny.files[0].sha256
    statuses = [(r.file, r.status) for r in verify_model(served.manifest.get("pack"), [first])]
    assert statuses == [("det.onnx", "missing"), ("rec.onnx", "missing")]


def test_verify_the_official_yunet_file(official_yunet: Path) -> None:
    entry = load_manifest().get("face_detection_yunet_2023mar")
    [result] = verify_model(entry, [official_yunet.parent])
    assert result.ok, result
    assert sha256_file(official_yunet) == entry.files[0].sha256
