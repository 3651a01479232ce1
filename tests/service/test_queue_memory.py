"""The in-memory twin against the queue contract."""

from __future__ import annotations

import pytest

from engine.service.queue.memory import MemoryTaskQueue
from engine.service.queue.types import TaskQueue
from tests.service.queue_contract import FakeClock, QueueContract, QueueFactory


class TestMemoryTaskQueue(QueueContract):
    @pytest.fixture
    def make_queue(self) -> QueueFactory:
        def make(
            *, clock: FakeClock, backoff_s: float = 2.0, max_backoff_s: float = 300.0
        ) -> TaskQueue:
            return MemoryTaskQueue(clock=clock, backoff_s=backoff_s, max_backoff_s=max_backoff_s)

        return make
