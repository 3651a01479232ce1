"""Deliver a task's final document to its `callback_url`: signed, retried, bounded.

The body is the task document as JSON. `X-AMP-Timestamp` carries the send time (Unix
seconds) and `X-AMP-Signature` is `sha256=` + hex HMAC-SHA256 over `"<timestamp>." + body`
with the configured secret, so a receiver can verify origin and reject replays. A delivery
is retried on connection errors, timeouts, 429 and 5xx with exponential backoff; any 2xx is
success, other 4xx are final. The URL is checked against the host allowlist again before
sending (a name may resolve differently than at submission).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

SIGNATURE_HEADER = "X-AMP-Signature"
TIMESTAMP_HEADER = "X-AMP-Timestamp"


@dataclass(frozen=True)
class CallbackPolicy:
    secret: str
    allowed_hosts: Sequence[str] = ()
    attempts: int = 4
    timeout_s: float = 10.0
    backoff_s: float = 1.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def deliver(
    url: str,
    document: dict[str, Any],
    policy: CallbackPolicy,
    *,
    check_url: Callable[[str, Sequence[str]], None],
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """POST the document; the outcome recorded on the task (`callback`)."""
    try:
        check_url(url, policy.allowed_hosts)
    except Exception as exc:  # noqa: BLE001 - refused targets are an outcome, not a crash
        return {"status": "refused", "attempts": 0, "error": str(exc)}
    body = json.dumps(document, default=str).encode()
    outcome: dict[str, Any] = {"status": "failed", "attempts": 0}
    with httpx.Client(timeout=policy.timeout_s, transport=transport) as client:
        for attempt in range(1, policy.attempts + 1):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(policy.secret, timestamp, body),
            }
            outcome["attempts"] = attempt
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                outcome.update(error=f"{type(exc).__name__}: {exc}", http_status=None)
            else:
                outcome.update(http_status=response.status_code, error=None)
                if response.is_success:
                    outcome["status"] = "delivered"
                    return outcome
                if response.status_code != 429 and response.status_code < 500:
                    outcome["error"] = f"the receiver answered {response.status_code}"
                    return outcome
                outcome["error"] = f"the receiver answered {response.status_code}"
            if attempt < policy.attempts:
                sleep(policy.backoff_s * 2 ** (attempt - 1))
    return outcome
