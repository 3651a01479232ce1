"""`amp immich`: status, sync, reconcile, apply and identify against an Immich server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.cli.face_options import (
    Detector,
    DetectorModel,
    DetThresh,
    IndexDir,
    JsonOutput,
    Providers,
    Recognizer,
    RecognizerModel,
    detector_from,
    recognizer_from,
)
from engine.cli.output import exits_on_amp_error, print_json, stderr
from engine.errors import OptionError
from engine.immich.apply import apply_actions, load_actions
from engine.immich.client import ImmichClient
from engine.immich.crosscheck import crosscheck, face_crops
from engine.immich.findings import Thresholds
from engine.immich.identify import identify_by_upload, identify_local, web_url
from engine.immich.mirror import MIRROR_NAME, ImmichMirror
from engine.immich.reconcile import default_thresholds
from engine.immich.report_html import render_report, required_crops
from engine.immich.sync import PathMap, sync_immich
from engine.index.location import default_index_dir
from engine.index.store import FaceIndex
from engine.io.atomic import write_atomic

app = typer.Typer(
    help="Cross-check Immich's faces and people with AMP's, and ask who is in a photo.",
    no_args_is_help=True,
)

Url = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="AMP_IMMICH_URL",
        show_envvar=True,
        help="Immich's URL, with or without /api (e.g. http://nas:2283).",
    ),
]
ApiKey = Annotated[
    str,
    typer.Option(
        "--api-key",
        envvar="AMP_IMMICH_API_KEY",
        show_envvar=True,
        show_default=False,
        help="An Immich API key (Account Settings > API Keys). Prefer the environment "
        "variable: a key on the command line shows in the shell history.",
    ),
]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for each Immich request.")]


def _client(url: str, api_key: str, timeout: float) -> ImmichClient:
    return ImmichClient(url, api_key, timeout_s=timeout)


@app.command("status")
@exits_on_amp_error
def status_command(
    url: Url, api_key: ApiKey, timeout: Timeout = 30.0, json_output: JsonOutput = False
) -> None:
    """Server version, how many people and photos, and whether the face jobs are idle."""
    with _client(url, api_key, timeout) as client:
        version = client.version()
        people = sum(1 for _ in client.iter_people(with_hidden=True))
        statistics = client.asset_statistics()
        jobs = client.job_counts()
    face_jobs = {
        name: {
            "active": jobs.get(name, {}).get("active", 0),
            "waiting": jobs.get(name, {}).get("waiting", 0),
        }
        for name in ("faceDetection", "facialRecognition")
    }
    idle = all(q["active"] == 0 and q["waiting"] == 0 for q in face_jobs.values())
    document = {
        "url": web_url(client.base_url),
        "version": str(version),
        "people": people,
        "assets": statistics,
        "face_jobs": face_jobs,
        "face_jobs_idle": idle,
    }
    if json_output:
        print_json(document)
        return
    table = Table(
        title=f"Immich {version} at {document['url']}", show_header=False, title_justify="left"
    )
    table.add_row("people", str(people))
    table.add_row("photos", str(statistics.get("images", "?")))
    for name, queue in face_jobs.items():
        table.add_row(name, f"{queue['active']} active, {queue['waiting']} waiting")
    table.add_row("face jobs", "idle" if idle else "busy: results may still change")
    stderr.print(table)


@app.command("sync")
@exits_on_amp_error
def sync_command(
    url: Url,
    api_key: ApiKey,
    path_map: Annotated[
        list[str] | None,
        typer.Option(
            help="IMMICH_PREFIX=LOCAL_PREFIX: where Immich's originals are on this machine "
            "(repeatable)."
        ),
    ] = None,
    download: Annotated[
        bool,
        typer.Option(
            help="Download originals that no path map or checksum finds, into the index's cache."
        ),
    ] = False,
    index_dir: IndexDir = None,
    detector: Detector = "auto",
    detector_model: DetectorModel = None,
    det_thresh: DetThresh = None,
    recognizer: Recognizer = "auto",
    recognizer_model: RecognizerModel = None,
    providers: Providers = None,
    timeout: Timeout = 30.0,
    json_output: JsonOutput = False,
) -> None:
    """Mirror Immich's people and faces, link each photo to its local file (path map, SHA-1
    against the index, or download), index those files and match AMP's faces to Immich's.

    Incremental: links, analysed files and downloads are kept between runs."""
    maps = [PathMap.parse(m) for m in path_map or []]
    root = index_dir or default_index_dir()
    face_detector = detector_from(detector, detector_model, det_thresh, providers)
    face_recognizer = recognizer_from(recognizer, recognizer_model, providers)
    with (
        _client(url, api_key, timeout) as client,
        FaceIndex(root) as index,
        ImmichMirror(root) as mirror,
    ):
        report = sync_immich(
            client,
            mirror,
            index,
            detector=face_detector,
            recognizer=face_recognizer,
            path_maps=maps,
            download_dir=root / "originals" if download else None,
        )
    document = {"index": str(root), "recognizer": face_recognizer.name, **report.to_dict()}
    if json_output:
        print_json(document)
    else:
        table = Table(title="amp immich sync", show_header=False, title_justify="left")
        for key in (
            "server_version",
            "people",
            "assets",
            "immich_faces",
            "linked",
            "unlinked",
            "newly_indexed",
            "matched_faces",
        ):
            table.add_row(key.replace("_", " "), str(document[key]))
        stderr.print(table)
        if report.unlinked:
            stderr.print(
                f"[yellow]{len(report.unlinked)} photos have no local file[/]: "
                "add --path-map or --download",
                highlight=False,
            )
        for item, error in report.failed:
            stderr.print(f"[red]failed[/] {item}: {error}", highlight=False)
    if report.failed:
        raise typer.Exit(code=1)


@app.command("reconcile")
@exits_on_amp_error
def reconcile_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for findings.json and report.html.")
    ],
    index_dir: IndexDir = None,
    recognizer: Recognizer = "auto",
    recognizer_model: RecognizerModel = None,
    max_distance: Annotated[
        float | None,
        typer.Option(
            help="Cosine distance under which faces are one identity (default: Immich's 0.5 "
            "for ArcFace, a calibrated value for dlib)."
        ),
    ] = None,
    min_iou: Annotated[
        float, typer.Option(help="Box overlap at which Immich's and AMP's face are one.")
    ] = 0.5,
    immich_url: Annotated[
        str | None,
        typer.Option(
            help="Immich's web URL for the report's links (default: the synced server's)."
        ),
    ] = None,
    json_output: JsonOutput = False,
) -> None:
    """Compare Immich's faces and people with AMP's, from what `sync` stored: missed and extra
    faces, faces on the wrong person, people to merge or split, duplicates, unnamed matches.

    Writes findings.json (edit it, then `amp immich apply`) and report.html (face crops side
    by side, sortable, with links into Immich)."""
    root = index_dir or default_index_dir()
    if not (root / MIRROR_NAME).is_file():
        raise OptionError(f"nothing synced in {root}: run `amp immich sync` first")
    face_recognizer = recognizer_from(recognizer, recognizer_model, None)
    defaults = default_thresholds(face_recognizer.name)
    thresholds = Thresholds(
        max_distance=defaults.max_distance if max_distance is None else max_distance,
        min_iou=min_iou,
        reassign_margin=defaults.reassign_margin,
        min_split_faces=defaults.min_split_faces,
    )
    with FaceIndex(root, readonly=True) as index, ImmichMirror(root) as mirror:
        report = crosscheck(mirror, index, face_recognizer.name, thresholds)
        base = immich_url or web_url(mirror.meta().get("base_url", ""))
    crops = face_crops(report, required_crops(report))
    out.mkdir(parents=True, exist_ok=True)
    document = report.to_dict()
    write_atomic(out / "findings.json", (json.dumps(document, indent=2) + "\n").encode())
    html = render_report(report, crops, immich_web_url=base, title="AMP cross-check of Immich")
    write_atomic(out / "report.html", html.encode())
    if json_output:
        print_json(document)
        return
    summary = report.summary
    table = Table(title="amp immich reconcile", show_header=False, title_justify="left")
    table.add_row(
        "findings",
        ", ".join(f"{k} {v}" for k, v in summary.findings_by_kind.items() if v) or "none",
    )
    detection = summary.detection
    table.add_row(
        "detection", f"precision {_pct(detection.precision)}, recall {_pct(detection.recall)}"
    )
    table.add_row("identity agreement", _pct(summary.identity_agreement_rate))
    table.add_row("written", f"{out / 'findings.json'}, {out / 'report.html'}")
    stderr.print(table)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


@app.command("apply")
@exits_on_amp_error
def apply_command(
    findings: Annotated[
        Path,
        typer.Argument(help="The findings.json of reconcile, edited to keep only wanted fixes."),
    ],
    url: Url,
    api_key: ApiKey,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Carry the changes out; without it nothing changes (dry run)."),
    ] = False,
    log: Annotated[
        Path | None, typer.Option(help="JSON-lines log of every change (default: beside FINDINGS).")
    ] = None,
    timeout: Timeout = 30.0,
    json_output: JsonOutput = False,
) -> None:
    """Rename people, merge people and move faces in Immich as the kept findings say.

    A dry run by default. Each step checks Immich's current state first and skips what is
    already done, so running it twice is safe."""
    actions = load_actions(findings)
    log_path = log or findings.with_name(findings.stem + ".applied.jsonl")
    with _client(url, api_key, timeout) as client:
        results = apply_actions(client, actions, execute=yes, log_path=log_path)
    if json_output:
        print_json(
            {"executed": yes, "log": str(log_path), "actions": [r.to_dict() for r in results]}
        )
    else:
        table = Table(title="amp immich apply" + ("" if yes else " (dry run: add --yes to apply)"))
        for column in ("outcome", "action"):
            table.add_column(column)
        for result in results:
            table.add_row(
                result.outcome,
                result.action.description + (f" ({result.detail})" if result.detail else ""),
            )
        stderr.print(table)
    if any(r.outcome == "failed" for r in results):
        raise typer.Exit(code=1)


@app.command("identify", no_args_is_help=True)
@exits_on_amp_error
def identify_command(
    photo: Annotated[Path, typer.Argument(help="The photo to ask about.", show_default=False)],
    upload: Annotated[
        bool,
        typer.Option(
            help="Ask Immich instead: upload the photo and wait for its face jobs "
            "(the photo leaves this machine)."
        ),
    ] = False,
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="AMP_IMMICH_URL", help="Immich's URL (for --upload)."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="AMP_IMMICH_API_KEY",
            show_default=False,
            help="Immich API key (for --upload).",
        ),
    ] = None,
    deadline: Annotated[
        float, typer.Option(help="Seconds to wait for Immich's face jobs (--upload).")
    ] = 300.0,
    index_dir: IndexDir = None,
    detector: Detector = "auto",
    detector_model: DetectorModel = None,
    det_thresh: DetThresh = None,
    recognizer: Recognizer = "auto",
    recognizer_model: RecognizerModel = None,
    providers: Providers = None,
    timeout: Timeout = 30.0,
    json_output: JsonOutput = False,
) -> None:
    """Who is in PHOTO, and up to 10 other photos of each of them.

    By default answered locally from the index that `sync` linked to Immich's people:
    nothing is uploaded. No face, or only unnamed people, are normal answers."""
    if not photo.is_file():
        raise OptionError(f"no photo at {photo}")
    if upload:
        if not url or not api_key:
            raise OptionError(
                "--upload needs --url and --api-key (or AMP_IMMICH_URL / AMP_IMMICH_API_KEY)"
            )
        with _client(url, api_key, timeout) as client:
            answer = identify_by_upload(photo, client, deadline_s=deadline)
    else:
        root = index_dir or default_index_dir()
        if not (root / MIRROR_NAME).is_file():
            raise OptionError(
                f"nothing synced in {root}: run `amp immich sync` first, or use --upload"
            )
        face_recognizer = recognizer_from(recognizer, recognizer_model, providers)
        with FaceIndex(root, readonly=True) as index, ImmichMirror(root) as mirror:
            answer = identify_local(
                photo,
                index,
                mirror,
                detector=detector_from(detector, detector_model, det_thresh, providers),
                recognizer=face_recognizer,
                min_similarity=default_thresholds(face_recognizer.name).min_similarity,
            )
    if json_output:
        print_json(answer.to_dict())
        return
    if not answer.faces:
        stderr.print(f"no face found in {photo}")
        return
    for number, face in enumerate(answer.faces, 1):
        if face.person_id is None:
            stderr.print(f"face {number}: nobody Immich knows")
            continue
        name = face.name or f"an unnamed person ({face.person_id})"
        stderr.print(f"face {number}: [bold]{name}[/]", highlight=False)
        for item in face.photos:
            similarity = "" if item.similarity is None else f"  {item.similarity:.3f}"
            stderr.print(f"   {item.url}  {item.path or ''}{similarity}", highlight=False)
