"""The app behind a real uvicorn server on 127.0.0.1, over HTTP (lifespan included)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from engine.service.app import create_app
from engine.service.queue.memory import MemoryTaskQueue
from engine.service.settings import Settings
from tests.service.conftest import TOKEN


@pytest.fixture
def server(settings: Settings, queue: MemoryTaskQueue) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, queue), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn exited"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_submit_and_poll_over_http(server: str, submission: dict, queue: MemoryTaskQueue) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "over-http-1"}
    with httpx.Client(base_url=server, timeout=10) as client:
        assert client.get("/healthz").json()["status"] == "ok"

        created = client.post("/api/v1/media:process", json=submission, headers=headers)
        assert created.status_code == 202, created.text
        assert created.headers["x-request-id"] == "over-http-1"
        location = created.headers["location"]

        polled = client.get(location, headers={"Authorization": f"Bearer {TOKEN}"})
        assert polled.status_code == 200
        assert polled.json()["status"] == "queued"

        too_big = client.post(
            "/api/v1/media:process",
            content=b"x" * (200 * 1024),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "body_too_large"
    assert sum(queue.counts().values()) == 1
