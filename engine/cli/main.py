"""The `amp` command: one typer app, one module per command group."""

from __future__ import annotations

import typer

from engine import __version__
from engine.cli import enhance, faces, immich, models, service

app = typer.Typer(
    name="amp",
    help="AMP: GPU-accelerated local processing for self-hosted photo libraries.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("enhance", no_args_is_help=True)(enhance.enhance)
app.add_typer(models.app, name="models")
app.add_typer(faces.app, name="faces")
app.add_typer(immich.app, name="immich")
app.command("serve")(service.serve)
app.command("worker")(service.worker)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"amp {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """AMP: GPU-accelerated local processing for self-hosted photo libraries."""
