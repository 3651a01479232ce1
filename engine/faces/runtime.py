"""ONNX Runtime in one place: which execution providers to use, and opening a model file.

Providers are chosen once here and logged, as Immich does (`immich_ml/sessions/ort.py`):
TensorRT, then CUDA, then CPU, among those the installed onnxruntime build offers. CPU is
always kept last as ORT's fallback for operators the accelerator lacks. An explicit list
overrides the order; a name that is unknown or not available is an error, not a silent
fallback, so a GPU worker that lost its CUDA libraries says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from engine.errors import DeviceError, ModelError, ModelNotFoundError, OptionError

log = logging.getLogger(__name__)

# What ORT raises for a file it cannot load; its error classes derive from Exception directly.
_LOAD_ERRORS = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.InvalidGraph,
    ort_state.InvalidProtobuf,
    ort_state.NoSuchFile,
    ort_state.NotImplemented,
    ort_state.RuntimeException,
)

CPU = "CPUExecutionProvider"
PROVIDER_PRIORITY: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    CPU,
)
"""The automatic order: fastest first."""

PROVIDER_ALIASES: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": CPU,
    "coreml": "CoreMLExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "dml": "DmlExecutionProvider",
}
"""Short names accepted on the command line; full ORT names are accepted as well."""


def available_providers() -> list[str]:
    """What the installed onnxruntime build can run on this machine."""
    return list(ort.get_available_providers())


def canonical_provider(name: str) -> str:
    """`cuda` -> `CUDAExecutionProvider`; a full ORT name is returned as given."""
    if name.endswith("ExecutionProvider"):
        return name
    try:
        return PROVIDER_ALIASES[name.lower()]
    except KeyError:
        known = ", ".join(sorted(PROVIDER_ALIASES))
        raise OptionError(
            f"unknown ONNX Runtime provider {name!r}; use one of {known} "
            "or a full name such as CUDAExecutionProvider"
        ) from None


def select_providers(available: Sequence[str], requested: Sequence[str] | None = None) -> list[str]:
    """The providers to open sessions with, best first.

    `requested` None: the members of PROVIDER_PRIORITY that are `available`, in that order.
    Otherwise `requested` in its own order (aliases allowed), each of which must be available;
    CPU is appended when available and missing, as the fallback for unsupported operators.
    """
    if requested is None:
        chosen = [p for p in PROVIDER_PRIORITY if p in available]
        if not chosen:
            raise DeviceError(
                "onnxruntime offers none of TensorRT, CUDA or CPU "
                f"(available: {', '.join(available) or 'none'}); reinstall onnxruntime"
            )
        return chosen
    if not requested:
        raise OptionError("the provider list is empty; omit it to choose automatically")
    chosen = list(dict.fromkeys(canonical_provider(p) for p in requested))
    missing = [p for p in chosen if p not in available]
    if missing:
        raise OptionError(
            f"ONNX Runtime provider(s) {', '.join(missing)} not available in this "
            f"onnxruntime build (available: {', '.join(available)}); for CUDA/TensorRT "
            "install onnxruntime-gpu (the `gpu` extra) and the matching CUDA libraries"
        )
    if CPU in available and CPU not in chosen:
        chosen.append(CPU)
    return chosen


def provider_options(
    providers: Sequence[str], trt_cache_dir: Path | None = None
) -> list[dict[str, str]]:
    """Per-provider options. TensorRT builds an engine per model and shape, which takes
    minutes; caching it on disk makes every later start take seconds."""
    options: list[dict[str, str]] = []
    for provider in providers:
        if provider == "TensorrtExecutionProvider" and trt_cache_dir is not None:
            options.append(
                {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(trt_cache_dir)}
            )
        else:
            options.append({})
    return options


def create_session(
    model_path: Path,
    providers: Sequence[str] | None = None,
    *,
    trt_cache_dir: Path | None = None,
) -> ort.InferenceSession:
    """An inference session on `model_path` with `select_providers(available, providers)`.

    Raises ModelNotFoundError for a missing file and ModelError for one ONNX Runtime cannot
    load (truncated download, not an ONNX model); the message says to fetch it again.
    """
    if not model_path.is_file():
        raise ModelNotFoundError(f"model file {model_path} does not exist")
    chosen = select_providers(available_providers(), providers)
    try:
        session = ort.InferenceSession(
            str(model_path),
            providers=chosen,
            provider_options=provider_options(chosen, trt_cache_dir),
        )
    except _LOAD_ERRORS as exc:
        raise ModelError(
            f"ONNX Runtime cannot load {model_path} ({type(exc).__name__}: {exc}); the file "
            "is damaged or not an ONNX model: delete it and fetch it again "
            "(`amp models verify` checks every file's sha256)"
        ) from exc
    active = session.get_providers()
    log.info("%s runs on %s (requested %s)", model_path.name, ", ".join(active), ", ".join(chosen))
    if active and active[0] != chosen[0]:
        # ORT falls back silently when a GPU provider's libraries fail to load.
        log.warning(
            "%s: %s could not be used, running on %s; check the CUDA/TensorRT installation",
            model_path.name,
            chosen[0],
            active[0],
        )
    return session
