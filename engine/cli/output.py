"""How the CLI talks: data to stdout, people to stderr, AmpError as one line and exit 1."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from engine.errors import AmpError

# stdout carries data (--json); everything meant for a person goes to stderr.
stdout = Console()
stderr = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def exits_on_amp_error(command: Callable[P, R]) -> Callable[P, R]:
    """Render a deliberate AmpError as one line and exit 1; a bug keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except AmpError as exc:
            stderr.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from exc

    return wrapper


def print_json(document: Any) -> None:
    """One JSON document on stdout, nothing else, so `amp ... --json | jq` works."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


class ProgressBar:
    """A rich progress bar on stderr with a live rate; silent under --json or off a TTY.

    `advance(items, megapixels)` counts one finished item; the rate shows items/s and, when
    megapixels are given, MP/s.
    """

    def __init__(self, total: int, label: str, *, enabled: bool, unit: str = "img") -> None:
        self._bar = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr,
            disable=not enabled or not stderr.is_terminal,
        )
        self._task = self._bar.add_task(label, total=total, rate="")
        self._unit = unit
        self._start = time.perf_counter()
        self._done = 0
        self._megapixels = 0.0

    def __enter__(self) -> ProgressBar:
        self._bar.start()
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.stop()

    def advance(self, *, counted: bool = True, megapixels: float | None = None) -> None:
        """One more item done; `counted` False for skipped items that say nothing of speed."""
        if counted:
            self._done += 1
            self._megapixels += megapixels or 0.0
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = f"{self._done / elapsed:.2f} {self._unit}/s"
        if megapixels is not None:
            rate += f"  {self._megapixels / elapsed:.2f} MP/s"
        self._bar.update(self._task, advance=1, rate=rate)
