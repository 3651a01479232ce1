"""Fixtures for the API tests: a photo tree under an input root, an output bucket, settings,
the in-memory queue, and a synchronous httpx client that drives the ASGI app in-process."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from PIL import Image

from engine.service.app import create_app
from engine.service.queue.memory import MemoryTaskQueue
from engine.service.settings import Settings

TOKEN = "test-token-4f1c"
BUCKET = "processed-photos"


class SyncASGITransport(httpx.BaseTransport):
    """httpx's ASGITransport, driven from synchronous tests: one event loop per request.
    (Starlette's TestClient warns on import with the installed httpx, and warnings fail.)"""

    def __init__(self, app: object) -> None:
        self._transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def run() -> httpx.Response:
            response = await self._transport.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return anyio.run(run)


@dataclass
class PhotoTree:
    root: Path  # the input root
    out: Path  # the bucket's output root
    photo: Path  # a real JPEG under the root
    png: Path
    text: Path  # not an image
    folder: Path
    outside: Path  # a JPEG outside every root
    link_out: Path  # a symlink under the root to `outside`
    link_in: Path  # a symlink under the root to `photo`


def write_jpeg(path: Path, size: tuple[int, int] = (16, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 120, 40)).save(path, format="JPEG")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> PhotoTree:
    root = tmp_path / "nas" / "photos"
    photo = write_jpeg(root / "raw" / "vacation" / "IMG_20230615_103045.jpg")
    png = root / "raw" / "scan.png"
    Image.new("L", (8, 8), 128).save(png, format="PNG")
    text = root / "raw" / "notes.jpg"
    text.write_text("not a photo at all\n")
    folder = root / "raw" / "album"
    folder.mkdir()
    outside = write_jpeg(tmp_path / "private" / "secret.jpg")
    link_out = root / "raw" / "innocent.jpg"
    link_out.symlink_to(outside)
    link_in = root / "latest.jpg"
    link_in.symlink_to(photo)
    out = tmp_path / "out"
    out.mkdir()
    return PhotoTree(root, out, photo, png, text, folder, outside, link_out, link_in)


@pytest.fixture
def settings(tree: PhotoTree, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("AMP_CONFIG", "AMP_API_TOKENS", "AMP_ALLOW_ANONYMOUS", "AMP_INPUT_ROOTS"):
        monkeypatch.delenv(name, raising=False)
    return Settings(
        api_tokens=[TOKEN, "second-token"],
        input_roots=[tree.root],
        buckets={BUCKET: tree.out},
        queue_path=tree.out.parent / "queue.sqlite3",
    )


@pytest.fixture
def queue() -> MemoryTaskQueue:
    return MemoryTaskQueue()


@pytest.fixture
def app(settings: Settings, queue: MemoryTaskQueue):  # type: ignore[no-untyped-def]
    return create_app(settings, queue)


@pytest.fixture
def anon_client(app) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(transport=SyncASGITransport(app), base_url="http://amp.test") as client:
        yield client


@pytest.fixture
def client(app) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(
        transport=SyncASGITransport(app),
        base_url="http://amp.test",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


@pytest.fixture
def submission(tree: PhotoTree) -> dict:
    """PRODUCT.md's example request, pointed at the test photo."""
    return {
        "file_path": str(tree.photo),
        "workflow": "nas-photo-processing",
        "parameters": {
            "image_enhance": {"scale_factor": 2, "denoise_strength": 0.3},
            "storage": {
                "bucket": BUCKET,
                "path_template": "year={year}/month={month}/{filename}",
            },
        },
        "priority": 5,
        "callback_url": "https://93.184.215.14/callback/media-processing",
        "metadata": {"project_id": "proj-456", "user_id": "user-123"},
    }


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    """The test's child processes; any still running at the end (a failed test) is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)
