"""`amp faces`: index the faces of a photo library, search it, and show what was detected."""

from __future__ import annotations

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
    Tiles,
    detector_from,
    providers_from,
    recognizer_from,
)
from engine.cli.output import ProgressBar, exits_on_amp_error, print_json, stderr
from engine.device import resolve_device
from engine.errors import ImageReadError, OptionError
from engine.faces.draw import draw_faces
from engine.faces.factory import DetectorConfig, RecognizerConfig
from engine.faces.pipeline import FileFaces, analyze_file, detect_file
from engine.faces.pixels import as_rgb8
from engine.faces.tiling import TileOptions
from engine.faces.types import DetectedFace
from engine.index.indexer import IndexedFile, index_files
from engine.index.location import default_index_dir
from engine.index.store import FaceIndex
from engine.io.atomic import write_atomic
from engine.io.decode import read_image
from engine.io.discover import find_images
from engine.io.encode import encode_image

app = typer.Typer(
    help="Detect faces, embed them, and search the local face index (exact cosine similarity).",
    no_args_is_help=True,
)


def _face_dict(face: DetectedFace, index: int) -> dict[str, object]:
    return {
        "index": index,
        "box_xyxy": [round(v, 1) for v in face.box_xyxy],
        "landmarks_xy": [[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks_xy],
        "score": round(face.score, 4),
        "detector": face.detector,
    }


@app.command("index", no_args_is_help=True)
@exits_on_amp_error
def index_command(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Image files and folders (recursive) to index.", show_default=False),
    ],
    index_dir: IndexDir = None,
    detector: Detector = "auto",
    detector_model: DetectorModel = None,
    det_thresh: DetThresh = None,
    recognizer: Recognizer = "auto",
    recognizer_model: RecognizerModel = None,
    tiles: Tiles = False,
    providers: Providers = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            show_default=False,
            help="Detect and embed on Ray actors ('local', 'auto', host:6379 or ray://host:10001); "
            "this process alone writes the index. Needs pip install '.[ray]'.",
        ),
    ] = None,
    ray_actors: Annotated[
        int | None,
        typer.Option(
            show_default=False, help="Ray actors (default: one per GPU, else per CPU core)."
        ),
    ] = None,
    json_output: JsonOutput = False,
) -> None:
    """Find every face in PATHS and add it, with its embedding, to the index.

    Resumable: each photo is committed on its own, and photos already indexed with the same
    recognizer (same size and mtime, or same sha1) are skipped. Exit code 1 if any file failed.
    """
    files = find_images(paths)
    if not files:
        raise ImageReadError(", ".join(map(str, paths)), "no images found there")
    root = index_dir or default_index_dir()
    tile_options = TileOptions() if tiles else None
    nodes: list[str] = []
    with FaceIndex(root) as index, ProgressBar(len(files), "index", enabled=not json_output) as bar:

        def on_result(result: IndexedFile) -> None:
            if result.status == "failed":
                stderr.print(f"[yellow]skipped[/] {result.path}: {result.error}", highlight=False)
            bar.advance(counted=result.status == "indexed")

        if ray_address is None:
            face_detector = detector_from(detector, detector_model, det_thresh, providers)
            face_recognizer = recognizer_from(recognizer, recognizer_model, providers)
            report = index_files(
                files,
                index,
                face_detector,
                face_recognizer,
                tiles=tile_options,
                on_result=on_result,
            )
            detector_name, recognizer_name = face_detector.name, face_recognizer.name
        else:
            from engine.distributed.ray_index import run_index_on_ray

            chosen = providers_from(providers)
            ray_report = run_index_on_ray(
                files,
                detector_config=DetectorConfig(
                    kind=detector,  # type: ignore[arg-type]  # checked by build_detector
                    model=detector_model,
                    det_thresh=det_thresh,
                    providers=chosen,
                ),
                recognizer_config=RecognizerConfig(
                    kind=recognizer,  # type: ignore[arg-type]  # checked by build_recognizer
                    model=recognizer_model,
                    providers=chosen,
                ),
                index=index,
                address=None if ray_address == "local" else ray_address,
                actors=ray_actors,
                tiles=tile_options,
                on_result=on_result,
            )
            report = ray_report
            detector_name, recognizer_name = ray_report.detector, ray_report.recognizer
            nodes = [node.describe() for node in ray_report.nodes]
        stats = index.stats()
    summary = {
        "index": str(root),
        "detector": detector_name,
        "recognizer": recognizer_name,
        "files": len(report.results),
        "indexed": report.count("indexed"),
        "unchanged": report.count("unchanged"),
        "failed": report.count("failed"),
        "faces_found": report.faces,
        "index_assets": stats.assets,
        "index_faces": stats.faces,
        **({"nodes": nodes} if nodes else {}),
    }
    if json_output:
        print_json({"summary": summary, "files": [r.to_dict() for r in report.results]})
    else:
        table = Table(title="amp faces index", show_header=False, title_justify="left")
        for key, value in summary.items():
            table.add_row(key.replace("_", " "), str(value))
        stderr.print(table)
    if report.count("failed"):
        raise typer.Exit(code=1)


@app.command("search", no_args_is_help=True)
@exits_on_amp_error
def search_command(
    image: Annotated[
        Path, typer.Argument(help="The photo whose people to look for.", show_default=False)
    ],
    top: Annotated[int, typer.Option(help="How many similar photos to list (1-1000).")] = 10,
    index_dir: IndexDir = None,
    device: Annotated[
        str,
        typer.Option(
            help="Where the search runs: auto (a CUDA GPU if any, else numpy), cpu, cuda[:N]."
        ),
    ] = "auto",
    detector: Detector = "auto",
    detector_model: DetectorModel = None,
    det_thresh: DetThresh = None,
    recognizer: Recognizer = "auto",
    recognizer_model: RecognizerModel = None,
    tiles: Tiles = False,
    providers: Providers = None,
    json_output: JsonOutput = False,
) -> None:
    """Photos of the library ranked by their best face-to-face cosine similarity with IMAGE's faces.

    Exact search over every indexed face of the same recognizer. The photo itself is left out.
    """
    if not 1 <= top <= 1000:
        raise OptionError(f"--top must be within 1..1000, got {top}")
    face_recognizer = recognizer_from(recognizer, recognizer_model, providers)
    found = analyze_file(
        image,
        detector_from(detector, detector_model, det_thresh, providers),
        face_recognizer,
        tiles=TileOptions() if tiles else None,
    )
    root = index_dir or default_index_dir()
    search_device = resolve_device(device)
    on_gpu = search_device if search_device.type == "cuda" else None
    with FaceIndex(root, readonly=True, device=on_gpu) as index:
        known = index.stats().recognizers
        if face_recognizer.name not in known:
            raise OptionError(
                f"the index at {root} has no embeddings from {face_recognizer.name} "
                f"(it has: {', '.join(known) or 'none'}); "
                "search with the recognizer it was built with"
            )
        hits = (
            index.similar_images(
                found.embeddings, face_recognizer.name, k=top, exclude_path=str(image.resolve())
            )
            if found.faces
            else []
        )
    document = {
        "image": str(image),
        "recognizer": face_recognizer.name,
        "faces": [_face_dict(f, i) for i, f in enumerate(found.faces)],
        "similar_images": [
            {
                "path": h.path,
                "similarity": round(h.similarity, 4),
                "query_face": h.query_face,
                "face_id": h.face_id,
            }
            for h in hits
        ],
    }
    if json_output:
        print_json(document)
        return
    if not found.faces:
        stderr.print(f"no face found in {image}")
        return
    table = Table(
        title=f"photos like {image.name} ({len(found.faces)} faces, {face_recognizer.name})"
    )
    for column in ("#", "similarity", "query face", "path"):
        table.add_column(column)
    for rank, hit in enumerate(hits, 1):
        table.add_row(str(rank), f"{hit.similarity:.3f}", str(hit.query_face), hit.path)
    stderr.print(table)


@app.command("show", no_args_is_help=True)
@exits_on_amp_error
def show_command(
    image: Annotated[Path, typer.Argument(help="The photo to analyse.", show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="PNG to write (default: STEM.faces.png in the current directory).",
            show_default=False,
        ),
    ] = None,
    detector: Detector = "auto",
    detector_model: DetectorModel = None,
    det_thresh: DetThresh = None,
    tiles: Tiles = False,
    providers: Providers = None,
    json_output: JsonOutput = False,
) -> None:
    """Detect the faces in IMAGE and write a PNG with their boxes, landmarks and scores drawn."""
    found: FileFaces = detect_file(
        image,
        detector_from(detector, detector_model, det_thresh, providers),
        tiles=TileOptions() if tiles else None,
    )
    target = out or Path.cwd() / f"{image.stem}.faces.png"
    if target.exists() and target.resolve() == image.resolve():
        raise OptionError(f"--out {target} is the input photo; AMP never overwrites originals")
    drawing = draw_faces(as_rgb8(read_image(image).pixels), found.faces)
    write_atomic(target, encode_image(drawing, "png"))
    document = {
        "image": str(image),
        "width": found.width,
        "height": found.height,
        "faces": [_face_dict(f, i) for i, f in enumerate(found.faces)],
        "drawing": str(target),
    }
    if json_output:
        print_json(document)
    else:
        stderr.print(f"{len(found.faces)} faces in {image}; drawn in {target}")
