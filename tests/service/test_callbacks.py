"""Callbacks: signed, retried on 5xx and connection errors, refused for disallowed hosts."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence

import httpx

from engine.service.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, CallbackPolicy, deliver

POLICY = CallbackPolicy(secret="s3cret", attempts=3, backoff_s=0.5)


def _allow(url: str, hosts: Sequence[str]) -> None:
    return None


def test_retries_until_delivered_with_a_verifiable_signature() -> None:
    seen: list[httpx.Request] = []
    replies = iter([httpx.Response(503), httpx.Response(500), httpx.Response(204)])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(replies)

    sleeps: list[float] = []
    outcome = deliver(
        "https://receiver.example/cb",
        {"task_id": "pt-1", "status": "completed"},
        POLICY,
        check_url=_allow,
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
    )
    assert outcome == {"status": "delivered", "attempts": 3, "http_status": 204, "error": None}
    assert sleeps == [0.5, 1.0]
    last = seen[-1]
    expected = hmac.new(
        b"s3cret", last.headers[TIMESTAMP_HEADER].encode() + b"." + last.content, hashlib.sha256
    ).hexdigest()
    assert last.headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert json.loads(last.content)["task_id"] == "pt-1"


def test_a_4xx_is_final_and_connection_errors_exhaust_the_attempts() -> None:
    calls = []

    def gone(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(410)

    outcome = deliver(
        "https://r.example/cb",
        {},
        POLICY,
        check_url=_allow,
        transport=httpx.MockTransport(gone),
        sleep=lambda s: None,
    )
    assert outcome["status"] == "failed" and outcome["http_status"] == 410 and len(calls) == 1

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    outcome = deliver(
        "https://r.example/cb",
        {},
        POLICY,
        check_url=_allow,
        transport=httpx.MockTransport(down),
        sleep=lambda s: None,
    )
    assert outcome["status"] == "failed" and outcome["attempts"] == 3
    assert "ConnectError" in outcome["error"]


def test_a_refused_target_is_never_contacted() -> None:
    def refuse(url: str, hosts: Sequence[str]) -> None:
        raise ValueError("callback host 127.0.0.1 is a loopback address")

    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("must not be called")

    outcome = deliver(
        "http://127.0.0.1/cb", {}, POLICY, check_url=refuse, transport=httpx.MockTransport(handler)
    )
    assert outcome == {
        "status": "refused",
        "attempts": 0,
        "error": "callback host 127.0.0.1 is a loopback address",
    }
