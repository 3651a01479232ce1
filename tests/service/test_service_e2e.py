"""The service for real: `amp serve` and `amp worker` processes on loopback, real photos,
real models. Submit, poll, complete, check every figure; kill -9 a worker mid-task; signed
callbacks retried against a local receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from PIL import Image

TOKEN = "e2e-token-0123456789"
SECRET = "callback-secret"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Receiver(BaseHTTPRequestHandler):
    """Fails the first delivery with 500, accepts the rest: the sender must retry."""

    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(500 if len(self.received) == 1 else 204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, faces_dir: Path, anime_weights: Path
) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("service")
    inputs, outputs, index = root / "in", root / "out", root / "index"
    inputs.mkdir()
    shutil.copy(faces_dir / "_groups" / "two_people.jpg", inputs)
    shutil.copy(faces_dir / "paul_allen" / "paul_allen.jpg", inputs)
    with Image.open(faces_dir / "barack_obama" / "obama.jpg") as im:
        im.crop((300, 150, 460, 350)).save(inputs / "small.jpg", exif=im.getexif())
    scrfd = faces_dir.parent / "models" / "unofficial" / "scrfd_2.5g_kps.hpc203-reexport.onnx"
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "AMP_API_TOKENS": TOKEN,
        "AMP_INPUT_ROOTS": str(inputs),
        "AMP_BUCKETS": json.dumps({"processed-photos": str(outputs)}),
        "AMP_QUEUE_PATH": str(root / "queue.sqlite"),
        "AMP_LEASE_S": "3",
        "AMP_HEARTBEAT_S": "0.5",
        "AMP_CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
        "AMP_CALLBACK_SECRET": SECRET,
        "AMP_INDEX_DIR": str(index),
        "AMP_ENHANCE__MODEL": str(anime_weights),
        "AMP_FACES__DETECTOR": "scrfd",
        "AMP_FACES__DETECTOR_MODEL": str(scrfd),
        "AMP_FACES__RECOGNIZER": "dlib",
    }
    # A small library to find similar photos in.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "faces",
            "index",
            str(faces_dir / "barack_obama"),
            str(faces_dir / "joe_biden"),
            "--detector",
            "scrfd",
            "--detector-model",
            str(scrfd),
            "--det-thresh",
            "0.6",
            "--recognizer",
            "dlib",
            "--json",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--port", str(port), "--workers", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[subprocess.Popen] = []
    context = {
        "url": f"http://127.0.0.1:{port}",
        "env": env,
        "inputs": inputs,
        "outputs": outputs,
        "workers": workers,
    }
    try:
        _wait(lambda: _healthy(context["url"]), 30, "the API never became healthy")
        workers.append(_start_worker(env))
        yield context
    finally:
        for process in [server, *workers]:
            process.terminate()
        for process in [server, *workers]:
            process.wait(timeout=30)


def _start_worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(predicate, timeout_s: float, message: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(message)


def _api(service: dict) -> httpx.Client:
    return httpx.Client(
        base_url=service["url"], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )


def _submit(service: dict, photo: str, workflow: str, **extra: object) -> dict:
    body = {
        "file_path": str(service["inputs"] / photo),
        "workflow": workflow,
        "parameters": {
            "storage": {
                "bucket": "processed-photos",
                "path_template": "year={year}/month={month}/{filename}",
            }
        },
        **extra,
    }
    with _api(service) as api:
        response = api.post("/api/v1/media:process", json=body)
    assert response.status_code == 202, response.text
    assert (
        response.headers["Location"]
        == f"/api/v1/media/processingTasks/{response.json()['task_id']}"
    )
    return response.json()


def _task(service: dict, task_id: str) -> dict:
    with _api(service) as api:
        return api.get(f"/api/v1/media/processingTasks/{task_id}").json()


def _until(service: dict, task_id: str, done, timeout_s: float = 120) -> dict:  # noqa: ANN001
    seen: dict = {}

    def check() -> bool:
        seen.update(_task(service, task_id))
        return bool(done(seen))

    _wait(check, timeout_s, f"task {task_id} stuck: {seen}")
    return seen


def test_a_task_runs_end_to_end_with_measured_figures_and_a_signed_callback(
    service: dict, receiver: ThreadingHTTPServer
) -> None:
    callback = f"http://127.0.0.1:{receiver.server_address[1]}/done"
    task = _submit(service, "two_people.jpg", "photo-analysis", callback_url=callback)
    assert task["status"] == "queued"
    final = _until(service, task["task_id"], lambda t: t["status"] in ("completed", "failed"))
    assert final["status"] == "completed", final

    usage = final["resource_usage"]
    assert usage["cpu_seconds"] > 0 and usage["memory_mb_seconds"] > 0
    assert usage["storage_read_bytes"] >= (service["inputs"] / "two_people.jpg").stat().st_size
    output = Path(final["output_path"])
    assert output.is_file() and output.is_relative_to(service["outputs"])
    assert usage["storage_write_bytes"] == output.stat().st_size
    assert "gpu_utilization" not in usage  # no GPU here: absent, not made up

    meta = final["output_metadata"]
    assert (meta["width"], meta["height"], meta["format"]) == (1126, 661, "jpeg")
    assert meta["size"] == output.stat().st_size and 0 <= meta["quality_score"] <= 1
    assert len(meta["face_data"]) == 2 and {t["tag"] for t in meta["tags"]} == {"people"}
    similar = {Path(s["path"]).parent.name for s in meta["similar_images"]}
    assert similar == {"barack_obama", "joe_biden"}
    assert final["duration"].startswith("PT") and final["progress"] == 1.0

    _wait(
        lambda: _task(service, task["task_id"]).get("callback", {}).get("status") == "delivered",
        30,
        "the callback was not delivered",
    )
    assert _task(service, task["task_id"])["callback"]["attempts"] == 2  # after one 500
    headers, body = _Receiver.received[-1]
    expected = hmac.new(
        SECRET.encode(), headers["X-AMP-Timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-AMP-Signature"] == f"sha256={expected}"
    assert json.loads(body)["task_id"] == task["task_id"]


def test_enhancement_workflow_stores_the_enhanced_photo(service: dict) -> None:
    task = _submit(
        service,
        "small.jpg",
        "nas-photo-processing",
        parameters={
            "image_enhance": {"scale_factor": 2},
            "storage": {"bucket": "processed-photos", "path_template": "enhanced/{stem}-x2.{ext}"},
        },
    )
    final = _until(service, task["task_id"], lambda t: t["status"] in ("completed", "failed"))
    assert final["status"] == "completed", final
    output = Path(final["output_path"])
    assert output == service["outputs"] / "enhanced" / "small-x2.jpg"
    with Image.open(output) as im:
        assert im.size == (320, 400)
    assert (final["output_metadata"]["width"], final["output_metadata"]["height"]) == (320, 400)


def test_a_worker_killed_mid_task_is_replaced_and_the_task_completes_once(service: dict) -> None:
    task = _submit(
        service,
        "paul_allen.jpg",
        "nas-photo-processing",
        parameters={
            "image_enhance": {"scale_factor": 4},
            "storage": {"bucket": "processed-photos", "path_template": "killed/{filename}"},
        },
    )
    _until(
        service,
        task["task_id"],
        lambda t: t["status"] == "processing" and t.get("current_node") == "ai/image-enhance",
        60,
    )
    victim = service["workers"].pop()
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    target = service["outputs"] / "killed" / "paul_allen.jpg"
    assert not target.exists() and not list((service["outputs"]).rglob("*.tmp*"))

    service["workers"].append(_start_worker(service["env"]))
    final = _until(service, task["task_id"], lambda t: t["status"] in ("completed", "failed"), 180)
    assert final["status"] == "completed", final
    assert final["retry_count"] == 1
    assert Path(final["output_path"]) == target and target.is_file()
    assert not list(service["outputs"].rglob("*.tmp*"))


def test_500_concurrent_submissions_are_all_queued_and_each_runs_once(service: dict) -> None:
    import concurrent.futures

    service["workers"].append(_start_worker(service["env"]))  # two workers compete for tasks
    body = {
        "file_path": str(service["inputs"] / "small.jpg"),
        "workflow": "photo-copy",
        "parameters": {
            "storage": {"bucket": "processed-photos", "path_template": "copies/{filename}"}
        },
    }
    with _api(service) as api:

        def completed() -> float:
            metrics = api.get("/metrics").text
            lines = [
                line
                for line in metrics.splitlines()
                if line.startswith("amp_tasks{") and 'status="completed"' in line
            ]
            return float(lines[0].split()[-1]) if lines else 0.0

        before = completed()

        def submit(_: int) -> str:
            response = api.post("/api/v1/media:process", json=body)
            assert response.status_code == 202, response.text
            return response.json()["task_id"]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            ids = list(pool.map(submit, range(500)))
        assert len(set(ids)) == 500

        _wait(lambda: completed() >= before + 500, 240, "the 500 tasks did not all complete")
        seen: list[dict] = []
        cursor = None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = api.get("/api/v1/media/processingTasks", params=params).json()
            seen += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    mine = [t for t in seen if t["task_id"] in set(ids)]
    assert len(mine) == 500  # none lost
    assert all(t["status"] == "completed" and t["retry_count"] == 0 for t in mine)  # each ran once
