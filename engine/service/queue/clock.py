"""Time for the queue: the default clock and the exact integer form stores keep."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

Clock = Callable[[], datetime]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def to_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch: exact for any datetime, and ordered as integers
    (ISO text would sort wrongly across offsets). A naive datetime raises TypeError."""
    return (moment - _EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND
