"""Models loaded once per worker process, on first use, under a lock; every task after the
first reuses them (loading is seconds, a task on a small photo is a fraction of that)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from engine.device import resolve_device, resolve_dtype
from engine.enhance.models import load_enhancement_model
from engine.enhance.upscaler import TileSettings, Upscaler
from engine.faces.factory import DetectorConfig, RecognizerConfig, build_detector, build_recognizer
from engine.faces.pipeline import SizedDetector
from engine.faces.types import FaceRecognizer


class ModelCache:
    def __init__(
        self,
        *,
        device: str = "auto",
        precision: str = "auto",
        detector: DetectorConfig | None = None,
        recognizer: RecognizerConfig | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self._dtype = resolve_dtype(precision, self.device)
        self._detector_config = detector or DetectorConfig()
        self._recognizer_config = recognizer or RecognizerConfig()
        self._lock = threading.Lock()
        self._models: dict[tuple[Any, ...], Any] = {}

    @property
    def has_gpu(self) -> bool:
        return self.device.type == "cuda"

    def upscaler(self, model: str, denoise: float | None) -> Upscaler:
        def load() -> Upscaler:
            loaded = load_enhancement_model(model, denoise)
            return Upscaler(
                loaded.network,
                loaded.spec,
                device=self.device,
                dtype=self._dtype,
                tiles=TileSettings(tile_px=None),
            )

        return self._get(("upscaler", model, denoise), load)

    def detector(self, det_thresh: float | None = None) -> SizedDetector:
        """The configured detector, or one like it at another score threshold."""
        config = self._detector_config
        if det_thresh is not None:
            config = dataclasses.replace(config, det_thresh=det_thresh)
        return self._get(("detector", config.det_thresh), lambda: build_detector(config))

    def recognizer(self) -> FaceRecognizer:
        return self._get(("recognizer",), lambda: build_recognizer(self._recognizer_config))

    def _get(self, key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._models:
                self._models[key] = load()
            return self._models[key]
