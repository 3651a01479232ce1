"""The one place that chooses the queue store from the settings."""

from __future__ import annotations

from engine.errors import OptionError
from engine.service.queue.types import TaskQueue
from engine.service.settings import Settings


def open_queue(settings: Settings) -> TaskQueue:
    """PostgreSQL when `queue_url` is set (shared by several machines), else SQLite."""
    if settings.queue_url is not None:
        try:
            from engine.service.queue.postgres import PostgresTaskQueue
        except ImportError as exc:
            raise OptionError(
                "a PostgreSQL queue_url needs psycopg: pip install '.[postgres]'"
            ) from exc
        return PostgresTaskQueue(settings.queue_url.get_secret_value())
    from engine.service.queue.sqlite import SqliteTaskQueue

    return SqliteTaskQueue(settings.queue_path)
