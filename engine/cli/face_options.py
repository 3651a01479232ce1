"""Options shared by the commands that detect and embed faces (`amp faces`, `amp immich`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.errors import OptionError
from engine.faces.factory import DetectorConfig, RecognizerConfig, build_detector, build_recognizer
from engine.faces.pipeline import SizedDetector
from engine.faces.types import FaceRecognizer
from engine.index.location import INDEX_DIR_ENV

IndexDir = Annotated[
    Path | None,
    typer.Option(
        "--index",
        envvar=INDEX_DIR_ENV,
        help=f"Index directory (default: ${INDEX_DIR_ENV}, else ~/.local/share/amp/index).",
        show_default=False,
    ),
]
Detector = Annotated[
    str, typer.Option(help="auto (SCRFD with buffalo_l when present, else YuNet), scrfd or yunet.")
]
DetectorModel = Annotated[
    str | None,
    typer.Option(
        help="Detector weights: a face pack name (scrfd), a manifest name or an .onnx path."
    ),
]
DetThresh = Annotated[
    float | None,
    typer.Option(
        help="Detection score threshold (default: Immich's 0.7 for SCRFD, 0.9 for YuNet)."
    ),
]
Recognizer = Annotated[
    str,
    typer.Option(help="auto (ArcFace with buffalo_l when present, else dlib), arcface or dlib."),
]
RecognizerModel = Annotated[
    str | None, typer.Option(help="ArcFace weights: a face pack name or an .onnx path.")
]
Tiles = Annotated[
    bool,
    typer.Option(
        help="Also detect on 640-px tiles of the full-resolution image, finding small faces a "
        "single pass misses (slower)."
    ),
]
Providers = Annotated[
    str | None,
    typer.Option(
        help="ONNX Runtime providers in order, comma-separated (e.g. cuda,cpu). "
        "Default: the best available."
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Write one JSON document to stdout.")]


def detector_from(
    kind: str, model: str | None, det_thresh: float | None, providers: str | None
) -> SizedDetector:
    if kind not in ("auto", "scrfd", "yunet"):
        raise OptionError(f"unknown --detector {kind!r}: use auto, scrfd or yunet")
    return build_detector(
        DetectorConfig(
            kind=kind, model=model, det_thresh=det_thresh, providers=providers_from(providers)
        )  # type: ignore[arg-type]
    )


def recognizer_from(kind: str, model: str | None, providers: str | None) -> FaceRecognizer:
    if kind not in ("auto", "arcface", "dlib"):
        raise OptionError(f"unknown --recognizer {kind!r}: use auto, arcface or dlib")
    return build_recognizer(
        RecognizerConfig(kind=kind, model=model, providers=providers_from(providers))  # type: ignore[arg-type]
    )


def providers_from(value: str | None) -> tuple[str, ...] | None:
    return tuple(p.strip() for p in value.split(",") if p.strip()) if value else None
