"""`amp models`: list, fetch and verify the model files AMP uses."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from engine.cli.output import exits_on_amp_error, print_json, stderr, stdout
from engine.registry.download import ProgressCallback, VerifyResult, fetch_model, verify_model
from engine.registry.locate import default_fetch_dir, locate_file, model_dirs
from engine.registry.manifest import FacePackEntry, ModelEntry, load_manifest

app = typer.Typer(
    help=(
        "List, download and verify model weights. Models are looked for in $AMP_MODELS_DIR "
        "(several directories separated by ':'), then the checkout's models/ directory, then "
        "$XDG_CACHE_HOME/amp/models (~/.cache/amp/models). $AMP_MANIFEST names another "
        "manifest than the built-in models/manifest.toml."
    ),
    no_args_is_help=True,
)

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Write one JSON document to stdout instead of a table.")
]


@app.command("list")
@exits_on_amp_error
def list_models(json_output: JsonFlag = False) -> None:
    """List every model in the manifest and where its files were found."""
    manifest = load_manifest()
    dirs = model_dirs()
    rows = [_describe(entry, dirs) for entry in manifest.models.values()]
    if json_output:
        print_json(rows)
        return
    table = Table("name", "kind", "size", "licence")
    table.add_column("location", overflow="fold")
    table.columns[0].no_wrap = True
    for row in rows:
        size = decimal(row["size_bytes"]) if row["size_bytes"] is not None else "?"
        location = row["location"] or _ABSENT_STYLE.format(
            "not downloaded"
            if row["status"] == "not-downloaded"
            else f"incomplete ({row['files_found']}/{len(row['files'])} files)"
        )
        table.add_row(row["name"], row["kind"], size, row["license"], location)
    stdout.print(table)


@app.command("fetch", no_args_is_help=True)
@exits_on_amp_error
def fetch(
    names: Annotated[
        list[str],
        typer.Argument(
            help="Models to download, by name (see `amp models list`).", show_default=False
        ),
    ],
    dest: Annotated[
        Path | None,
        typer.Option(
            "--dest",
            help="Directory to save into; a face pack goes to DEST/NAME/. Default: the first "
            "$AMP_MODELS_DIR directory, else $XDG_CACHE_HOME/amp/models (~/.cache/amp/models).",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Download models from their official URLs and check their sha256.

    Interrupted downloads resume; files already in place and verified are skipped.
    The saved paths are printed on stdout.
    """
    manifest = load_manifest()
    entries = [manifest.get(name) for name in names]
    target = dest if dest is not None else default_fetch_dir()
    fetched: dict[str, list[Path]] = {}
    with _progress_bar(enabled=not json_output) as on_progress:
        for entry in entries:
            fetched[entry.name] = fetch_model(entry, target, progress=on_progress)
    if json_output:
        print_json([{"name": name, "paths": paths} for name, paths in fetched.items()])
        return
    for paths in fetched.values():
        for path in paths:
            stdout.print(str(path), highlight=False, soft_wrap=True)


@app.command("verify")
@exits_on_amp_error
def verify(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models to check. Default: every model in the manifest.", show_default=False
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Check the sha256 of model files found in the lookup directories.

    Exits 1 when a file differs from the official release; missing files are only reported.
    """
    manifest = load_manifest()
    entries = [manifest.get(name) for name in names] if names else list(manifest.models.values())
    dirs = model_dirs()
    results = [result for entry in entries for result in verify_model(entry, dirs)]
    if json_output:
        print_json([_verify_row(r) for r in results])
    else:
        _print_verify_table(results)
    mismatched = [r for r in results if r.status == "mismatch"]
    if mismatched:
        models = " ".join(dict.fromkeys(r.model for r in mismatched))
        stderr.print(
            f"[bold red]error:[/] {len(mismatched)} file(s) differ from the official release "
            f"({', '.join(str(r.path) for r in mismatched)}); delete them and run "
            f"`amp models fetch {models}`",
            highlight=False,
        )
        raise typer.Exit(code=1)


def _describe(entry: ModelEntry, dirs: Sequence[Path]) -> dict[str, Any]:
    found = [locate_file(entry, f, dirs) for f in entry.files]
    present = [p for p in found if p is not None]
    location: Path | None = None
    if len(present) == len(found):
        status = "present"
        location = present[0].parent if isinstance(entry, FacePackEntry) else present[0]
    else:
        status = "incomplete" if present else "not-downloaded"
    return {
        "name": entry.name,
        "kind": entry.kind,
        "size_bytes": entry.total_size,
        "license": entry.license,
        "description": entry.description,
        "status": status,
        "files_found": len(present),
        "location": str(location) if location is not None else None,
        "download_urls": list(entry.download_urls),
        "files": [
            {
                "name": f.name,
                "size_bytes": f.size,
                "sha256": f.sha256,
                "path": str(p) if p is not None else None,
            }
            for f, p in zip(entry.files, found, strict=True)
        ],
    }


def _verify_row(result: VerifyResult) -> dict[str, Any]:
    return {
        "model": result.model,
        "file": result.file,
        "status": result.status,
        "path": str(result.path) if result.path is not None else None,
        "expected_sha256": result.expected_sha256,
        "actual_sha256": result.actual_sha256,
    }


_ABSENT_STYLE = "[dim]{}[/]"
_STATUS_STYLE = {
    "ok": "[green]ok[/]",
    "mismatch": "[bold red]MISMATCH[/]",
    "missing": "[yellow]missing[/]",
}


def _print_verify_table(results: Sequence[VerifyResult]) -> None:
    table = Table("model", "file", "status")
    table.add_column("path", overflow="fold")
    table.columns[0].no_wrap = True
    for r in results:
        path = str(r.path) if r.path is not None else ""
        table.add_row(r.model, r.file, _STATUS_STYLE[r.status], path)
    stdout.print(table)


@contextlib.contextmanager
def _progress_bar(*, enabled: bool) -> Iterator[ProgressCallback]:
    """A byte progress bar per download on stderr; silent under --json or without a TTY."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=not enabled or not stderr.is_terminal,
    )
    tasks: dict[str, TaskID] = {}

    def update(label: str, done_bytes: int, total_bytes: int | None) -> None:
        if label not in tasks:
            tasks[label] = progress.add_task(label, total=total_bytes, completed=done_bytes)
        else:
            progress.update(tasks[label], completed=done_bytes, total=total_bytes)

    with progress:
        yield update
