"""How the CLI talks: data to stdout, people to stderr, AmpError as one line and exit 1."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

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
