"""Prometheus metrics in the text exposition format (0.0.4), written by hand: no dependency.

- `amp_tasks{status}` (gauge): tasks in the queue per status, read from the queue per scrape.
- `amp_task_submissions_total{workflow,outcome}` (counter): accepted submissions; outcome is
  `created`, or `replayed` when an idempotency key returned an existing task.
- `amp_http_requests_total{method,route,status}` (counter) and
  `amp_http_request_duration_seconds{method,route}` (histogram): every HTTP request, timed
  from the first byte of the request to the last of the response, by route template
  (`/api/v1/media/processingTasks/{task_id}`), so task ids do not multiply the series.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping

from engine.service.queue.types import TaskStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    text = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
    return "{" + text + "}" if text else ""


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    """The service's counters; thread-safe (sync routes run in a thread pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._submissions: dict[tuple[str, str], int] = defaultdict(int)
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._latency_buckets: dict[tuple[str, str], list[int]] = {}
        self._latency_sum: dict[tuple[str, str], float] = defaultdict(float)
        self._latency_count: dict[tuple[str, str], int] = defaultdict(int)

    def count_submission(self, workflow: str, *, created: bool) -> None:
        with self._lock:
            self._submissions[(workflow, "created" if created else "replayed")] += 1

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route)
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            buckets = self._latency_buckets.setdefault(key, [0] * len(LATENCY_BUCKETS_S))
            for i, bound in enumerate(LATENCY_BUCKETS_S):
                if seconds <= bound:
                    buckets[i] += 1
            self._latency_sum[key] += seconds
            self._latency_count[key] += 1

    def render(self, task_counts: Mapping[TaskStatus, int] | None) -> str:
        """The exposition text; `task_counts` None when the queue cannot be read."""
        lines: list[str] = []
        lines += [
            "# HELP amp_queue_up 1 if the task queue answered this scrape, else 0.",
            "# TYPE amp_queue_up gauge",
            f"amp_queue_up {0 if task_counts is None else 1}",
        ]
        lines += [
            "# HELP amp_tasks Tasks in the queue, by status.",
            "# TYPE amp_tasks gauge",
        ]
        if task_counts is not None:
            for status in TaskStatus:
                count = task_counts.get(status, 0)
                lines.append(f"amp_tasks{_labels([('status', status.value)])} {count}")
        with self._lock:
            submissions = dict(self._submissions)
            requests = dict(self._requests)
            buckets = {key: list(value) for key, value in self._latency_buckets.items()}
            sums = dict(self._latency_sum)
            counts = dict(self._latency_count)
        lines += [
            "# HELP amp_task_submissions_total Accepted submissions, by workflow and outcome.",
            "# TYPE amp_task_submissions_total counter",
        ]
        for (workflow, outcome), count in sorted(submissions.items()):
            labels = _labels([("workflow", workflow), ("outcome", outcome)])
            lines.append(f"amp_task_submissions_total{labels} {count}")
        lines += [
            "# HELP amp_http_requests_total HTTP requests, by method, route and status.",
            "# TYPE amp_http_requests_total counter",
        ]
        for (method, route, status), count in sorted(requests.items()):
            labels = _labels([("method", method), ("route", route), ("status", status)])
            lines.append(f"amp_http_requests_total{labels} {count}")
        lines += [
            "# HELP amp_http_request_duration_seconds HTTP request latency.",
            "# TYPE amp_http_request_duration_seconds histogram",
        ]
        for (method, route), cumulative in sorted(buckets.items()):
            base = [("method", method), ("route", route)]
            for bound, count in zip(LATENCY_BUCKETS_S, cumulative, strict=True):
                labels = _labels([*base, ("le", _number(bound))])
                lines.append(f"amp_http_request_duration_seconds_bucket{labels} {count}")
            total = counts[(method, route)]
            labels = _labels([*base, ("le", "+Inf")])
            lines.append(f"amp_http_request_duration_seconds_bucket{labels} {total}")
            seconds = _number(sums[(method, route)])
            lines.append(f"amp_http_request_duration_seconds_sum{_labels(base)} {seconds}")
            lines.append(f"amp_http_request_duration_seconds_count{_labels(base)} {total}")
        return "\n".join(lines) + "\n"
