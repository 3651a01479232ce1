"""`amp serve` and `amp worker`: the processing-task service and its workers."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from engine.cli.output import exits_on_amp_error, stderr
from engine.errors import OptionError

ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="AMP_CONFIG",
        show_default=False,
        help="TOML settings file (environment variables AMP_* override it).",
    ),
]


def _settings(config: Path | None, **overrides: object):  # noqa: ANN202 - Settings
    from engine.service.settings import Settings

    try:
        return Settings.load(config, **{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise OptionError(f"invalid service settings: {problems}") from None


@exits_on_amp_error
def serve(
    config: ConfigFile = None,
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default from settings: 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default from settings: 8080).")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(help="Worker processes to start beside the API on this machine (0: none)."),
    ] = 1,
) -> None:
    """Serve the processing-task API (POST /api/v1/media:process ...) with its workers.

    Settings come from AMP_* environment variables or --config: AMP_API_TOKENS,
    AMP_INPUT_ROOTS, AMP_BUCKETS, AMP_QUEUE_PATH and more (see the README)."""
    import uvicorn

    from engine.service.app import create_app
    from engine.service.queue.open import open_queue

    settings = _settings(config, host=host, port=port)
    queue = open_queue(settings)
    app = create_app(settings, queue)
    command = [sys.executable, "-m", "engine", "worker"] + (
        ["--config", str(config)] if config else []
    )
    children = [subprocess.Popen(command) for _ in range(workers)]
    stderr.print(f"amp serve on http://{settings.host}:{settings.port} with {workers} workers")
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    finally:
        queue.close()
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=30)


@exits_on_amp_error
def worker(
    config: ConfigFile = None,
    max_tasks: Annotated[
        int | None, typer.Option(help="Stop after this many tasks (default: run until stopped).")
    ] = None,
) -> None:
    """Run tasks from the queue until SIGTERM or Ctrl-C; models load once, on first use."""
    from engine.service.assemble import build_worker
    from engine.service.queue.open import open_queue

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _settings(config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    queue = open_queue(settings)
    try:
        runner = build_worker(settings, queue)
        where = "PostgreSQL" if settings.queue_url else settings.queue_path
        stderr.print(f"amp worker {runner.worker_id} on {where}")
        runner.run(stop, max_tasks=max_tasks)
    finally:
        queue.close()
