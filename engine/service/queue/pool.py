"""Database connections for a queue store: one per concurrent caller, kept for reuse.

Connections are not shared between threads at the same time and never cross a fork (a
child process must open its own queue object).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


class ConnectionPool(Generic[C]):
    """`connect` opens a connection; `max_idle` bounds those kept between calls (None: all)."""

    def __init__(
        self, connect: Callable[[], C], *, owner: str, max_idle: int | None = None
    ) -> None:
        self._connect = connect
        self._owner = owner  # for messages, e.g. "the task queue /var/lib/amp/queue.sqlite"
        self._max_idle = max_idle
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._idle: list[C] = []
        self._closed = False

    def borrow(self, usable: Callable[[C], bool] = lambda conn: True) -> tuple[C, bool]:
        """A connection for one call, and whether it was reused (else newly opened)."""
        if os.getpid() != self._pid:
            raise RuntimeError(
                f"{self._owner} must not cross a fork; open a new one in each process"
            )
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._owner} is closed")
            while self._idle:
                conn = self._idle.pop()
                if usable(conn):
                    return conn, True
                conn.close()
        return self._connect(), False

    def give_back(self, conn: C, *, healthy: bool = True) -> None:
        with self._lock:
            room = self._max_idle is None or len(self._idle) < self._max_idle
            if healthy and room and not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection; connections in use close when their call returns."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
