"""The processing-task API (PRODUCT.md section A), driven in-process over ASGI."""

from __future__ import annotations

import copy
import re
import uuid

import anyio
import httpx
import pytest

from engine.service.app import create_app
from engine.service.queue.memory import MemoryTaskQueue
from engine.service.queue.types import TaskStatus
from tests.service.conftest import BUCKET, TOKEN, PhotoTree

SUBMIT = "/api/v1/media:process"
TASKS = "/api/v1/media/processingTasks"


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["message"]
    return body["error"]


def queued_count(queue: MemoryTaskQueue) -> int:
    return sum(queue.counts().values())


# --- Submit, get, list, cancel ------------------------------------------------------------


def test_submit_answers_202_with_location_and_the_task(
    client: httpx.Client, submission: dict, tree: PhotoTree, queue: MemoryTaskQueue
) -> None:
    response = client.post(SUBMIT, json=submission)

    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"{TASKS}/{body['task_id']}"
    assert body["task_id"].startswith("pt-")
    assert body["file_path"] == str(tree.photo)
    assert body["workflow"] == "nas-photo-processing"
    assert body["status"] == "queued"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["queued_at"])
    assert body["priority"] == 5
    assert body["callback_url"] == submission["callback_url"]
    assert body["metadata"] == submission["metadata"]
    assert body["max_retries"] == 3 and body["retry_count"] == 0
    assert body["resource_requirements"]["gpu_required"] is False
    assert body["resource_requirements"]["accelerator_type"] == "nvidia-tesla-t4"
    for absent in ("started_at", "completed_at", "duration", "worker_id", "output_metadata"):
        assert absent not in body

    record = queue.get(body["task_id"])
    assert record is not None and record.status is TaskStatus.QUEUED
    assert record.file_path == str(tree.photo.resolve())
    assert record.parameters["image_enhance"] == {"scale_factor": 2, "denoise_strength": 0.3}
    assert record.parameters["similarity"] == {"top_k": 10}  # the workflow's default
    assert record.parameters["storage"]["bucket"] == BUCKET


def test_a_symlink_inside_the_root_is_queued_as_its_real_path(
    client: httpx.Client, submission: dict, tree: PhotoTree, queue: MemoryTaskQueue
) -> None:
    submission["file_path"] = str(tree.link_in)
    response = client.post(SUBMIT, json=submission)

    assert response.status_code == 202, response.text
    assert response.json()["file_path"] == str(tree.link_in)  # as submitted
    assert queue.get(response.json()["task_id"]).file_path == str(tree.photo.resolve())


def test_get_returns_the_task_and_404_for_an_unknown_id(
    client: httpx.Client, submission: dict
) -> None:
    created = client.post(SUBMIT, json=submission)
    got = client.get(created.headers["location"])
    assert got.status_code == 200
    assert got.json() == created.json()

    missing = client.get(f"{TASKS}/pt-doesnotexist")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "task_not_found"


def test_list_filters_by_status_and_paginates(client: httpx.Client, submission: dict) -> None:
    ids = [client.post(SUBMIT, json=submission).json()["task_id"] for _ in range(5)]
    client.post(f"{TASKS}/{ids[0]}:cancel")

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(TASKS, params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= 2
        seen += [item["task_id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]  # newest first, each once
    assert pages == 3

    queued = client.get(TASKS, params={"status": "queued"}).json()["items"]
    assert {item["task_id"] for item in queued} == set(ids[1:])
    cancelled = client.get(TASKS, params={"status": "cancelled"}).json()["items"]
    assert [item["task_id"] for item in cancelled] == [ids[0]]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"status": "sleeping"}, 422, "validation_failed"),
        ({"limit": 0}, 422, "validation_failed"),
        ({"limit": 201}, 422, "validation_failed"),
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
    ],
)
def test_list_refuses_bad_queries(
    client: httpx.Client, params: dict, status: int, code: str
) -> None:
    response = client.get(TASKS, params=params)
    assert response.status_code == status, response.text
    assert error_of(response)["code"] == code


def test_cancel_is_a_custom_method_on_the_task(
    client: httpx.Client, submission: dict, queue: MemoryTaskQueue
) -> None:
    task_id = client.post(SUBMIT, json=submission).json()["task_id"]

    response = client.post(f"{TASKS}/{task_id}:cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert "completed_at" in response.json()
    assert queue.get(task_id).status is TaskStatus.CANCELLED

    again = client.post(f"{TASKS}/{task_id}:cancel")  # final: unchanged
    assert again.status_code == 200 and again.json() == response.json()

    # ":cancel" is never taken as part of an id, nor GET a cancel.
    assert client.get(f"{TASKS}/{task_id}:cancel").status_code == 404
    unknown = client.post(f"{TASKS}/pt-nope:cancel")
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "task_not_found"
    other = client.post(f"{TASKS}/{task_id}:pause")
    assert other.status_code in (404, 405)
    error_of(other)


# --- Auth and request ids -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", SUBMIT), ("GET", TASKS), ("GET", f"{TASKS}/pt-1"), ("POST", f"{TASKS}/pt-1:cancel")],
)
def test_task_routes_need_a_valid_token(
    anon_client: httpx.Client, method: str, path: str, submission: dict, queue: MemoryTaskQueue
) -> None:
    body = submission if method == "POST" else None
    missing = anon_client.request(method, path, json=body)
    assert missing.status_code == 401
    assert error_of(missing)["code"] == "unauthorized"
    assert missing.headers["www-authenticate"].startswith("Bearer")

    wrong = anon_client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}x"}
    )
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert TOKEN not in wrong.text
    basic = anon_client.request(method, path, json=body, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    assert queued_count(queue) == 0


def test_every_configured_token_is_accepted(anon_client: httpx.Client) -> None:
    for token in (TOKEN, "second-token"):
        response = anon_client.get(TASKS, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200


def test_anonymous_access_when_allowed(settings, queue: MemoryTaskQueue) -> None:  # type: ignore[no-untyped-def]
    from tests.service.conftest import SyncASGITransport

    open_app = create_app(settings.model_copy(update={"allow_anonymous": True}), queue)
    with httpx.Client(transport=SyncASGITransport(open_app), base_url="http://a") as client:
        assert client.get(TASKS).status_code == 200


def test_request_id_is_echoed_or_generated_on_every_response(
    client: httpx.Client, anon_client: httpx.Client
) -> None:
    echoed = client.get(TASKS, headers={"X-Request-ID": "req-abc.123"})
    assert echoed.headers["x-request-id"] == "req-abc.123"

    for response in (
        client.get(TASKS),
        anon_client.get(TASKS),  # 401
        client.get(f"{TASKS}/pt-missing"),  # 404
        client.get("/no/such/route"),
        anon_client.get("/healthz"),
        client.get(TASKS, headers={"X-Request-ID": "bad id with spaces"}),
    ):
        generated = response.headers["x-request-id"]
        assert uuid.UUID(generated).version == 4, response.text


# --- Idempotency --------------------------------------------------------------------------


def test_idempotency_key_returns_the_same_task(
    client: httpx.Client, submission: dict, queue: MemoryTaskQueue
) -> None:
    headers = {"Idempotency-Key": "upload-7f3a"}
    first = client.post(SUBMIT, json=submission, headers=headers)
    second = client.post(SUBMIT, json=submission, headers=headers)

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["task_id"] == first.json()["task_id"]
    assert second.headers["location"] == first.headers["location"]
    assert queued_count(queue) == 1

    changed = copy.deepcopy(submission) | {"priority": 9}
    conflict = client.post(SUBMIT, json=changed, headers=headers)
    assert conflict.status_code == 409
    assert error_of(conflict)["code"] == "idempotency_key_reused"
    assert queued_count(queue) == 1

    fresh = client.post(SUBMIT, json=submission, headers={"Idempotency-Key": "upload-other"})
    assert fresh.status_code == 202 and queued_count(queue) == 2


def test_client_request_id_serves_as_idempotency_key(
    client: httpx.Client, submission: dict, queue: MemoryTaskQueue
) -> None:
    headers = {"X-Request-ID": "retry-me-42"}
    first = client.post(SUBMIT, json=submission, headers=headers)
    second = client.post(SUBMIT, json=submission, headers=headers)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["task_id"] == second.json()["task_id"]
    # Without any client id, two submissions are two tasks.
    client.post(SUBMIT, json=submission)
    client.post(SUBMIT, json=submission)
    assert queued_count(queue) == 3


def test_malformed_idempotency_key_is_refused(
    client: httpx.Client, submission: dict, queue: MemoryTaskQueue
) -> None:
    response = client.post(SUBMIT, json=submission, headers={"Idempotency-Key": "a b"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_idempotency_key"
    assert queued_count(queue) == 0


# --- Refusals: the right 4xx, an error body, nothing queued -------------------------------


def _set(path: str, value: object):  # type: ignore[no-untyped-def]
    def change(body: dict, tree: PhotoTree) -> None:
        *parents, last = path.split(".")
        target = body
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value(tree) if callable(value) else value

    return change


def _drop(key: str):  # type: ignore[no-untyped-def]
    def change(body: dict, tree: PhotoTree) -> None:
        del body[key]

    return change


BAD_SUBMISSIONS = {
    "missing file": (_set("file_path", lambda t: str(t.root / "nope.jpg")), 422, "file_not_found"),
    "directory": (_set("file_path", lambda t: str(t.folder)), 422, "not_a_file"),
    "outside roots": (_set("file_path", lambda t: str(t.outside)), 403, "path_not_allowed"),
    "missing outside roots": (
        _set("file_path", lambda t: str(t.outside.parent / "x.jpg")),
        403,
        "path_not_allowed",
    ),
    "dot-dot out of root": (
        _set("file_path", lambda t: f"{t.root}/../../private/secret.jpg"),
        403,
        "path_not_allowed",
    ),
    "symlink out of root": (_set("file_path", lambda t: str(t.link_out)), 403, "path_not_allowed"),
    "relative path": (_set("file_path", "raw/vacation/x.jpg"), 422, "invalid_file_path"),
    "NUL byte": (_set("file_path", lambda t: f"{t.photo}\x00.jpg"), 422, "invalid_file_path"),
    "not an image": (_set("file_path", lambda t: str(t.text)), 422, "not_an_image"),
    "unknown workflow": (_set("workflow", "make-it-pretty"), 422, "unknown_workflow"),
    "unknown bucket": (_set("parameters.storage.bucket", "elsewhere"), 422, "unknown_bucket"),
    "template with ..": (
        _set("parameters.storage.path_template", "../{filename}"),
        422,
        "invalid_path_template",
    ),
    "absolute template": (
        _set("parameters.storage.path_template", "/etc/{filename}"),
        422,
        "invalid_path_template",
    ),
    "unknown template field": (
        _set("parameters.storage.path_template", "{user}/{filename}"),
        422,
        "invalid_path_template",
    ),
    "priority 0": (_set("priority", 0), 422, "validation_failed"),
    "priority 11": (_set("priority", 11), 422, "validation_failed"),
    "scale 0": (_set("parameters.image_enhance.scale_factor", 0), 422, "validation_failed"),
    "scale 9": (_set("parameters.image_enhance.scale_factor", 9), 422, "validation_failed"),
    "denoise 1.5": (
        _set("parameters.image_enhance.denoise_strength", 1.5),
        422,
        "validation_failed",
    ),
    "extra field": (_set("colour", "blue"), 422, "validation_failed"),
    "extra parameter": (_set("parameters.image_enhance.sharpen", 1), 422, "validation_failed"),
    "missing workflow": (_drop("workflow"), 422, "validation_failed"),
    "metadata object value": (_set("metadata.nested", {"a": 1}), 422, "validation_failed"),
    "too many metadata keys": (
        _set("metadata", {f"k{i}": i for i in range(33)}),
        422,
        "validation_failed",
    ),
    "callback not a URL": (_set("callback_url", "not a url"), 422, "validation_failed"),
    "callback to loopback": (
        _set("callback_url", "http://127.0.0.1:9000/cb"),
        422,
        "callback_not_allowed",
    ),
    "callback to 10.x": (_set("callback_url", "https://10.1.2.3/cb"), 422, "callback_not_allowed"),
    "callback to localhost": (
        _set("callback_url", "http://localhost/cb"),
        422,
        "callback_not_allowed",
    ),
    "callback to link-local": (
        _set("callback_url", "http://169.254.169.254/latest/meta-data"),
        422,
        "callback_not_allowed",
    ),
    "callback to IPv6 loopback": (
        _set("callback_url", "http://[::1]:8080/cb"),
        422,
        "callback_not_allowed",
    ),
    "enhance options on a workflow without enhance": (
        _set("workflow", "photo-analysis"),
        422,
        "parameter_not_applicable",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SUBMISSIONS))
def test_bad_submissions_are_refused_and_nothing_is_queued(
    client: httpx.Client, submission: dict, tree: PhotoTree, queue: MemoryTaskQueue, case: str
) -> None:
    change, status, code = BAD_SUBMISSIONS[case]
    change(submission, tree)

    response = client.post(SUBMIT, json=submission)

    assert response.status_code == status, response.text
    assert error_of(response)["code"] == code
    assert "x-request-id" in response.headers
    assert queued_count(queue) == 0


def test_validation_errors_carry_details(client: httpx.Client, submission: dict) -> None:
    submission["priority"] = 42
    error = error_of(client.post(SUBMIT, json=submission))
    assert error["details"][0]["loc"] == ["body", "priority"]
    assert "priority" in error["message"]


def test_unknown_workflow_lists_the_known_ones(client: httpx.Client, submission: dict) -> None:
    submission["workflow"] = "nope"
    error = error_of(client.post(SUBMIT, json=submission))
    assert "nas-photo-processing" in error["details"]["workflows"]
    assert "photo-analysis" in error["message"]


def test_a_png_and_a_light_workflow_are_accepted(
    client: httpx.Client, tree: PhotoTree, queue: MemoryTaskQueue
) -> None:
    response = client.post(
        SUBMIT,
        json={
            "file_path": str(tree.png),
            "workflow": "photo-analysis",
            "parameters": {"storage": {"bucket": BUCKET}, "face_detect": {"tiles": True}},
            "max_retries": 0,
        },
    )
    assert response.status_code == 202, response.text
    record = queue.get(response.json()["task_id"])
    assert record.max_retries == 0
    assert record.parameters["face_detect"] == {"tiles": True}
    assert record.parameters["storage"]["path_template"] == "year={year}/month={month}/{filename}"
    assert "image_enhance" not in record.parameters
    assert record.resource_requirements == {
        "gpu_required": False,
        "memory_mb": 2048,
        "cpu_millis": 2000,
    }


def test_a_workflow_that_stores_needs_a_bucket(
    client: httpx.Client, tree: PhotoTree, queue: MemoryTaskQueue
) -> None:
    response = client.post(SUBMIT, json={"file_path": str(tree.photo), "workflow": "photo-copy"})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "storage_required"
    assert error["details"] == {"buckets": [BUCKET]}
    assert queued_count(queue) == 0


def test_allowed_callback_hosts_may_be_private(
    settings, queue: MemoryTaskQueue, submission: dict
) -> None:  # type: ignore[no-untyped-def]
    from tests.service.conftest import SyncASGITransport

    allowing = settings.model_copy(update={"callback_allowed_hosts": ["127.0.0.1"]})
    app = create_app(allowing, queue)
    with httpx.Client(
        transport=SyncASGITransport(app),
        base_url="http://a",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        submission["callback_url"] = "http://127.0.0.1:9000/cb"
        assert client.post(SUBMIT, json=submission).status_code == 202
        submission["callback_url"] = "http://10.0.0.1/cb"
        assert client.post(SUBMIT, json=submission).status_code == 422


def test_malformed_json_is_400(client: httpx.Client, queue: MemoryTaskQueue) -> None:
    response = client.post(
        SUBMIT, content=b'{"file_path": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"
    assert queued_count(queue) == 0


def test_a_body_over_the_limit_is_413_before_parsing(
    client: httpx.Client, submission: dict, queue: MemoryTaskQueue
) -> None:
    submission["metadata"] = {"note": "x" * 1000}
    big = b'{"pad": "' + b"x" * (64 * 1024) + b'"}'
    response = client.post(SUBMIT, content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "body_too_large"
    assert error["details"] == {"max_body_bytes": 64 * 1024}
    assert "x-request-id" in response.headers
    assert queued_count(queue) == 0


def test_a_streamed_body_is_cut_off_at_the_limit(app, queue: MemoryTaskQueue) -> None:  # type: ignore[no-untyped-def]
    """No Content-Length (chunked): the guard counts bytes as they arrive and stops early."""
    chunks = [b'{"file_path": "' + b"x" * 40_000, b"y" * 40_000, b"z" * 40_000 + b'"}']
    received = []
    sent: list[dict] = []

    async def receive() -> dict:
        chunk = chunks.pop(0)
        received.append(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": SUBMIT,
        "raw_path": SUBMIT.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"amp.test"),
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("amp.test", 80),
    }
    anyio.run(app, scope, receive, send)

    assert sent[0]["status"] == 413
    assert len(received) == 2  # the third chunk was never read
    assert b"body_too_large" in sent[1]["body"]
    assert queued_count(queue) == 0


def test_an_unexpected_failure_is_a_500_without_internals(settings) -> None:  # type: ignore[no-untyped-def]
    from tests.service.conftest import SyncASGITransport

    class Broken(MemoryTaskQueue):
        def get(self, task_id: str):  # type: ignore[no-untyped-def]
            raise RuntimeError("secret internals: /var/lib/amp")

    app = create_app(settings, Broken())
    with httpx.Client(
        transport=SyncASGITransport(app),
        base_url="http://a",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        response = client.get(f"{TASKS}/pt-1")
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error"
    assert "secret" not in response.text
    assert response.headers["x-request-id"] in error["message"]


# --- Health, metrics, OpenAPI -------------------------------------------------------------


def test_healthz_needs_no_token_and_reports_the_queue(anon_client: httpx.Client, settings) -> None:  # type: ignore[no-untyped-def]
    response = anon_client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["queue"] == "ok"
    assert "nas-photo-processing" in response.json()["workflows"]

    from tests.service.conftest import SyncASGITransport

    class Down(MemoryTaskQueue):
        def counts(self):  # type: ignore[no-untyped-def]
            raise OSError("database is locked")

    app = create_app(settings, Down())
    with httpx.Client(transport=SyncASGITransport(app), base_url="http://a") as client:
        down = client.get("/healthz")
        assert down.status_code == 503
        assert down.json() == {
            "status": "unavailable",
            "queue": "unavailable",
            "workflows": ["nas-photo-processing", "photo-analysis", "photo-copy"],
        }
        assert "amp_queue_up 0" in client.get("/metrics").text


_SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? '
    r"(-?[0-9.e+-]+|\+Inf|NaN)$"
)


def parse_metrics(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert _SAMPLE.match(line), line
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def test_metrics_are_prometheus_text_and_count_submissions(
    client: httpx.Client, anon_client: httpx.Client, submission: dict
) -> None:
    before = anon_client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse_metrics(before.text)
    assert samples['amp_tasks{status="queued"}'] == 0

    client.post(SUBMIT, json=submission)
    client.post(SUBMIT, json=submission, headers={"Idempotency-Key": "k1"})
    client.post(SUBMIT, json=submission, headers={"Idempotency-Key": "k1"})

    after = parse_metrics(anon_client.get("/metrics").text)
    assert after['amp_tasks{status="queued"}'] == 2
    created = 'amp_task_submissions_total{workflow="nas-photo-processing",outcome="created"}'
    replayed = 'amp_task_submissions_total{workflow="nas-photo-processing",outcome="replayed"}'
    assert (after[created], after[replayed]) == (2, 1)
    route = 'method="POST",route="/api/v1/media:process"'
    assert after[f'amp_http_requests_total{{{route},status="202"}}'] == 2
    assert after[f"amp_http_request_duration_seconds_count{{{route}}}"] == 3
    assert after[f'amp_http_request_duration_seconds_bucket{{{route},le="+Inf"}}'] == 3


def test_openapi_lists_the_routes(anon_client: httpx.Client) -> None:
    document = anon_client.get("/openapi.json").json()
    paths = document["paths"]
    assert "post" in paths[SUBMIT]
    assert "202" in paths[SUBMIT]["post"]["responses"]
    assert "get" in paths[TASKS]
    assert "get" in paths[TASKS + "/{task_id}"]
    assert "post" in paths[TASKS + "/{task_id}:cancel"]
    assert "/healthz" in paths and "/metrics" in paths
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    task = document["components"]["schemas"]["TaskPublic"]["properties"]
    assert {"task_id", "duration", "resource_usage", "output_metadata"} <= set(task)
    assert anon_client.get("/docs").status_code == 200
