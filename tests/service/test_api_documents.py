"""Pure parts of the API: the task document from a record, durations, callback targets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.service.errors import ApiError
from engine.service.paths import check_callback_url
from engine.service.queue.types import TaskRecord, TaskStatus
from engine.service.schemas import SUBMITTED_PATH_KEY, iso_duration, task_public

T0 = datetime(2023, 6, 15, 10, 30, 45, 250_000, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (435, "PT7m15s"),  # PRODUCT.md's example
        (0, "PT0s"),
        (0.4123, "PT0.412s"),
        (59.5, "PT59.5s"),
        (60, "PT1m"),
        (3605, "PT1h5s"),
        (7200 + 180, "PT2h3m"),
        (90061, "PT25h1m1s"),
        (-1, "PT0s"),
    ],
)
def test_iso_duration(seconds: float, text: str) -> None:
    assert iso_duration(seconds) == text


def record(**changes: object) -> TaskRecord:
    base = TaskRecord(
        task_id="pt-123456",
        file_path="/volume1/photos/raw/IMG.jpg",
        workflow="nas-photo-processing",
        parameters={SUBMITTED_PATH_KEY: "/nas/photos/raw/IMG.jpg"},
        priority=5,
        status=TaskStatus.QUEUED,
        queued_at=T0,
        max_retries=3,
    )
    return TaskRecord(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_a_queued_task_shows_only_what_is_known() -> None:
    document = task_public(record()).model_dump(mode="json")
    assert document == {
        "task_id": "pt-123456",
        "file_path": "/nas/photos/raw/IMG.jpg",
        "workflow": "nas-photo-processing",
        "status": "queued",
        "queued_at": "2023-06-15T10:30:45Z",
        "priority": 5,
        "retry_count": 0,
        "max_retries": 3,
    }


def test_a_processing_task_shows_node_progress_and_usage_so_far() -> None:
    document = task_public(
        record(
            status=TaskStatus.PROCESSING,
            started_at=T0 + timedelta(seconds=5),
            worker_id="worker-t4-1",
            current_node="ai/image-enhance",
            progress=0.4,
            resource_usage={"cpu_seconds": 120.5, "memory_mb_seconds": 785000.0},
        )
    ).model_dump(mode="json")
    assert document["current_node"] == "ai/image-enhance"
    assert document["progress"] == 0.4
    assert document["input_path"] == "/volume1/photos/raw/IMG.jpg"
    assert document["resource_usage"] == {"cpu_seconds": 120.5, "memory_mb_seconds": 785000.0}
    assert "gpu_utilization" not in document["resource_usage"]  # a CPU worker
    assert "duration" not in document


def test_a_completed_task_has_duration_usage_and_output_metadata() -> None:
    output = {
        "width": 8192,
        "height": 4608,
        "format": "jpeg",
        "size": 4294967,
        "quality_score": 0.92,
        "tags": [{"tag": "people", "confidence": 0.93}],
        "face_data": [
            {
                "index": 0,
                "face_id": "face-1a2b",
                "confidence": 0.92,
                "bounding_box": [120, 80, 240, 320],
            }
        ],
        "similar_images": [{"image_id": "img-789012", "path": "/nas/x.jpg", "similarity": 0.85}],
    }
    usage = {
        "cpu_seconds": 300.0,
        "memory_mb_seconds": 1.5e6,
        "gpu_utilization": 0.75,
        "storage_read_bytes": 5_000_000,
        "storage_write_bytes": 4_294_967,
        "peak_rss_mb": 812.5,  # a figure the worker adds: kept
    }
    started = T0 + timedelta(seconds=10)
    document = task_public(
        record(
            status=TaskStatus.COMPLETED,
            started_at=started,
            completed_at=started + timedelta(minutes=7, seconds=15),
            progress=1.0,
            output_path="/out/year=2023/month=06/IMG.jpg",
            resource_usage=usage,
            output_metadata=output,
            callback={"status": "delivered", "attempts": 1, "http_status": 204, "error": None},
        )
    ).model_dump(mode="json")
    assert document["duration"] == "PT7m15s"
    assert document["completed_at"] == "2023-06-15T10:38:10Z"
    assert document["output_metadata"] == output
    assert document["resource_usage"] == usage
    assert document["callback"] == {"status": "delivered", "attempts": 1, "http_status": 204}


def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    return lambda host: table.get(host, [])


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.215.14/cb",
        "https://hooks.example/cb",  # resolves to a public address
        "https://unresolvable.example/cb",  # nothing can be sent there; checked again later
        "http://[2606:4700::1111]/cb",
    ],
)
def test_public_callbacks_pass(url: str) -> None:
    check_callback_url(url, [], resolve=resolver({"hooks.example": ["93.184.215.14"]}))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/cb",
        "http://127.1.2.3/cb",
        "http://10.0.0.8/cb",
        "http://172.16.5.4/cb",
        "http://192.168.1.10/cb",
        "http://169.254.169.254/cb",
        "http://0.0.0.0/cb",
        "http://[::1]/cb",
        "http://[fe80::1]/cb",
        "http://[fd00::1]/cb",
        "http://[::ffff:127.0.0.1]/cb",
        "http://224.0.0.1/cb",
        "http://localhost:8080/cb",
        "http://api.localhost/cb",
        "https://nas.lan/cb",  # resolves to a private address
        "https://split.example/cb",  # one of its addresses is private
        "ftp://93.184.215.14/cb",
        "https:///cb",
    ],
)
def test_non_public_callbacks_are_refused(url: str) -> None:
    table = {"nas.lan": ["192.168.1.5"], "split.example": ["93.184.215.14", "10.0.0.1"]}
    with pytest.raises(ApiError) as raised:
        check_callback_url(url, [], resolve=resolver(table))
    assert raised.value.code == "callback_not_allowed"
    assert raised.value.status == 422


def test_allowed_hosts_bypass_the_address_check() -> None:
    table = {"nas.lan": ["192.168.1.5"]}
    check_callback_url("https://NAS.lan/cb", ["nas.lan"], resolve=resolver(table))
    check_callback_url("http://[::1]:9000/cb", ["::1"], resolve=resolver(table))
    check_callback_url("http://127.0.0.1/cb", ["127.0.0.1"], resolve=resolver(table))
    with pytest.raises(ApiError):
        check_callback_url("http://127.0.0.2/cb", ["127.0.0.1"], resolve=resolver(table))
