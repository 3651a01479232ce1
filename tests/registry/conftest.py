"""A real HTTP file server on 127.0.0.1 and a manifest whose models it serves."""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.registry.manifest import Manifest, load_manifest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("AMP_SHARED_DIR", REPO.parent / "shared")).resolve()


def _shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: tests need ../shared (set AMP_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def shared_manifest_md() -> Path:
    """The independent record of official sizes and sha256 values."""
    return _shared("models/MANIFEST.md")


@pytest.fixture(scope="session")
def official_yunet() -> Path:
    """The official YuNet 2023mar release file, byte for byte."""
    return _shared("models/face_detection_yunet_2023mar.onnx")


@dataclass(frozen=True)
class Request:
    path: str
    range: str | None


@dataclass
class FileServer:
    """Serves `files` by path; `redirects` answer 302 like GitHub release URLs do."""

    base_url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    ignore_range: bool = False
    # Send only this many body bytes of the next response, then drop the connection.
    cut_next_after: int | None = None

    def url(self, path: str) -> str:
        return self.base_url + path

    def file_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path not in self.redirects]


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            range_header = self.headers.get("Range")
            state.requests.append(Request(self.path, range_header))
            if self.path in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = state.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
            if match and not state.ignore_range:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if state.cut_next_after is not None:
                body, state.cut_next_after = body[: state.cut_next_after], None
                self.close_connection = True
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    state = FileServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    state.base_url = f"http://{host!s}:{port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@dataclass(frozen=True)
class Served:
    """A manifest on disk whose `tiny` file and `pack` archive the file server provides."""

    manifest_path: Path
    manifest: Manifest
    tiny: bytes
    tiny_path: str  # where the server holds it (the manifest URL redirects there)
    pack_members: dict[str, bytes]
    pack_path: str


@pytest.fixture
def served(file_server: FileServer, tmp_path_factory: pytest.TempPathFactory) -> Served:
    # 3 MiB and a bit: several 1 MiB chunks and a short last one.
    tiny = bytes(range(256)) * (3 * 4096) + b"tail"
    file_server.files["/objects/tiny.bin"] = tiny
    file_server.redirects["/releases/download/v1/tiny.bin"] = "/objects/tiny.bin"
    members = {"det.onnx": b"detector" * 1000, "rec.onnx": b"recognizer" * 2000}
    # Like antelopev2.zip: members under a folder, plus a file AMP does not want.
    archive = _zip_bytes({f"pack/{k}": v for k, v in members.items()} | {"pack/README": b"hi"})
    file_server.files["/releases/download/v1/pack.zip"] = archive
    text = f"""
schema_version = 1

[models.tiny]
kind = "enhance"
license = "BSD-3-Clause"
description = "test weights"

[models.tiny.network]
arch = "SRVGGNetCompact"
num_conv = 2
scale = 4

[[models.tiny.files]]
name = "tiny.bin"
url = "{file_server.url("/releases/download/v1/tiny.bin")}"
size = {len(tiny)}
sha256 = "{_sha256(tiny)}"

[models.pack]
kind = "face-pack"
license = "test"
description = "test face pack"
archive_url = "{file_server.url("/releases/download/v1/pack.zip")}"

[models.pack.network]
det_input_px = 640
det_thresh = 0.7
nms_thresh = 0.4
embedding_dim = 512
rec_input_px = 112
"""
    for (name, data), role in zip(members.items(), ("detection", "recognition"), strict=True):
        text += f"""
[[models.pack.files]]
name = "{name}"
size = {len(data)}
sha256 = "{_sha256(data)}"
role = "{role}"
"""
    path = tmp_path_factory.mktemp("manifest") / "manifest.toml"
    path.write_text(text, encoding="utf-8")
    return Served(
        manifest_path=path,
        manifest=load_manifest(path),
        tiny=tiny,
        tiny_path="/objects/tiny.bin",
        pack_members=members,
        pack_path="/releases/download/v1/pack.zip",
    )
