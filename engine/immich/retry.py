"""When to retry a request to Immich, and how long to wait first. Pure: no clock, no sockets.

Retried: failures that say nothing about the request itself (a refused or dropped connection,
a timeout) and answers that mean "not now": 429 and 500/502/503/504. Any other 4xx is the
request's own fault and would fail the same way again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

# Transport failures worth another attempt: the connection was refused, dropped or too slow.
# UnsupportedProtocol and LocalProtocolError are bugs in the request and stay fatal.
RETRY_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` attempts after the first; exponential backoff from `backoff_s`, capped at
    `max_backoff_s`, with full jitter. A server's Retry-After is honoured up to
    `max_retry_after_s`, so a misconfigured proxy cannot park AMP for an hour."""

    max_retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 60.0

    @property
    def attempts(self) -> int:
        return self.max_retries + 1


def is_retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES


def is_retryable_exception(exc: BaseException) -> bool:
    return isinstance(exc, RETRY_EXCEPTIONS)


def backoff_delay_s(retry: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full jitter (uniform in [0, cap]) for the `retry`-th retry, counting from 0: spreads the
    retries of many workers instead of having them hit a recovering server in lockstep."""
    cap = min(policy.max_backoff_s, policy.backoff_s * (2**retry))
    return rng.uniform(0.0, cap)


def parse_retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), None when
    absent or unreadable. A date in the past means "now" (0)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def delay_before_retry_s(
    retry: int,
    policy: RetryPolicy,
    rng: random.Random,
    *,
    retry_after: str | None = None,
    now: datetime | None = None,
) -> float:
    """The wait before the `retry`-th retry: the server's Retry-After when it gave one (capped),
    else the jittered backoff."""
    asked = parse_retry_after_s(retry_after, now)
    if asked is not None:
        return min(asked, policy.max_retry_after_s)
    return backoff_delay_s(retry, policy, rng)
