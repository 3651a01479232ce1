"""The pure parts both stores share: the backoff formula and the page cursor."""

from __future__ import annotations

import pytest

from engine.errors import TaskCursorError
from engine.service.queue import cursor
from engine.service.queue.clock import from_us, to_us
from engine.service.queue.lifecycle import RetryPolicy
from tests.service.queue_contract import START


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff_s=2.0, max_backoff_s=300.0)
    assert [policy.delay_s(n) for n in range(1, 10)] == [2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert policy.delay_s(10_000) == 300.0  # no float overflow for absurd retry counts
    assert RetryPolicy(backoff_s=0.0).delay_s(5) == 0.0


def test_backoff_refuses_negative_settings() -> None:
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(backoff_s=-1.0)


def test_cursor_round_trip() -> None:
    position = cursor.PagePosition(to_us(START), 41)
    token = cursor.encode(position)
    assert cursor.decode(token) == position
    assert str(to_us(START)) not in token  # opaque to clients


def test_cursor_refuses_tampering() -> None:
    token = cursor.encode(cursor.PagePosition(1, 2))
    for tampered in ["!" + token, token + "==", token[:-1], "2" + token[1:]]:
        with pytest.raises(TaskCursorError, match="first page"):
            cursor.decode(tampered)


def test_times_are_stored_exactly() -> None:
    assert from_us(to_us(START)) == START
    with pytest.raises(TypeError):
        to_us(START.replace(tzinfo=None))
