"""The connection pool both database stores use."""

from __future__ import annotations

import os

import pytest

from engine.service.queue.pool import ConnectionPool


class _Conn:
    opened = 0

    def __init__(self) -> None:
        _Conn.opened += 1
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_reuse_bounds_health_close_and_fork() -> None:
    pool = ConnectionPool(_Conn, owner="the task queue test", max_idle=1)
    a, reused = pool.borrow()
    assert not reused
    b, _ = pool.borrow()  # a second caller meanwhile: a second connection
    pool.give_back(a)
    pool.give_back(b)  # over max_idle: closed, not kept
    assert b.closed and not a.closed
    again, reused = pool.borrow()
    assert again is a and reused
    pool.give_back(a, healthy=False)  # e.g. left mid-transaction: never reused
    assert a.closed
    fresh, reused = pool.borrow(usable=lambda c: not c.closed)
    assert fresh is not a and not reused
    pool.give_back(fresh)

    pool._pid = -1  # as seen from a forked child
    with pytest.raises(RuntimeError, match="must not cross a fork"):
        pool.borrow()
    pool._pid = os.getpid()
    pool.close()
    assert fresh.closed
    with pytest.raises(RuntimeError, match="is closed"):
        pool.borrow()
