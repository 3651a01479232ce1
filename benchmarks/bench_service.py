"""The task service's own overhead: submit latency and completed tasks/s.

    python benchmarks/bench_service.py --tasks 200 --workers 2

Starts `amp serve` with N worker processes on loopback (a temporary queue, input root and
bucket), submits TASKS tasks of the CPU-only `photo-copy` workflow (decode -> store: the
service's overhead plus a JPEG decode and encode) from CONCURRENCY client threads, and
measures each submission's latency (request to 202) and the rate at which tasks complete
(from the first submission to the last completion). Writes JSON and a PNG histogram.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import cpu_model  # noqa: E402

SHARED = Path(os.environ.get("AMP_SHARED_DIR", REPO.parent / "shared")).resolve()
TOKEN = "bench-token-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="amp-bench-service-"))
    inputs, outputs = root / "in", root / "out"
    inputs.mkdir()
    photo = SHARED / "faces" / "kit_harington" / "john2.jpg"
    shutil.copy(photo, inputs / photo.name)
    port = free_port()
    env = {
        **os.environ,
        "AMP_API_TOKENS": TOKEN,
        "AMP_INPUT_ROOTS": str(inputs),
        "AMP_BUCKETS": json.dumps({"out": str(outputs)}),
        "AMP_QUEUE_PATH": str(root / "queue.sqlite"),
        "AMP_HEARTBEAT_S": "2",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        body = {
            "file_path": str(inputs / photo.name),
            "workflow": "photo-copy",
            "parameters": {"storage": {"bucket": "out", "path_template": "{filename}"}},
        }
        client = httpx.Client(base_url=url, headers=headers, timeout=30)

        def submit(_: int) -> tuple[float, str]:
            start = time.perf_counter()
            response = client.post("/api/v1/media:process", json=body)
            response.raise_for_status()
            return time.perf_counter() - start, response.json()["task_id"]

        first = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(submit, range(args.tasks)))
        submitted = time.perf_counter()
        latencies = [r[0] for r in results]
        while True:
            metrics = client.get("/metrics").text
            done = sum(
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith("amp_tasks{") and 'status="completed"' in line
            )
            failed = sum(
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith("amp_tasks{") and 'status="failed"' in line
            )
            if done + failed >= args.tasks:
                break
            time.sleep(0.05)
        finished = time.perf_counter()
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)

    document = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
        "workflow": "photo-copy (decode -> store) of a 630x374 JPEG",
        "tasks": args.tasks,
        "workers": args.workers,
        "client_threads": args.concurrency,
        "submit_latency_ms": {
            "p50": round(1000 * statistics.median(latencies), 2),
            "p99": round(1000 * percentile(latencies, 0.99), 2),
            "max": round(1000 * max(latencies), 2),
        },
        "submissions_per_s": round(args.tasks / (submitted - first), 1),
        "completed_tasks_per_s": round(done / (finished - first), 2),
        "failed": int(failed),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "service.json").write_text(json.dumps(document, indent=2) + "\n")
    plot(latencies, args.out / "service.png", document)
    print(json.dumps(document, indent=2))


def plot(latencies: list[float], path: Path, document: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist([1000 * v for v in latencies], bins=40)
    ax.set_xlabel("submit latency, ms")
    ax.set_ylabel("submissions")
    ax.set_title(
        f"{document['tasks']} submissions, {document['workers']} workers: "
        f"{document['completed_tasks_per_s']} tasks/s"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
