"""ArcFace embeddings (insightface `w600k_r50` and kin) on an ONNX Runtime session.

Preprocessing is insightface's `ArcFaceONNX.get_feat`: a 112x112 crop aligned on the five
landmarks (`norm_crop`), RGB, (x - mean) / std as NCHW float32, where mean/std is 127.5/127.5
for PyTorch exports and 0/1 for the old MXNet exports that normalise inside the graph.
insightface passes BGR crops to `blobFromImages(..., swapRB=True)`; AMP's crops are already
RGB, so no swap is needed. Embeddings are L2-normalised, as Immich compares them by cosine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import onnxruntime as ort

from engine.errors import OptionError, UnsupportedModelError
from engine.faces.align import align_face
from engine.faces.pixels import as_rgb8
from engine.faces.types import DetectedFace

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32


def input_normalisation(node_names: Iterable[str]) -> tuple[float, float]:
    """(mean, std) for a model whose first graph nodes are `node_names`.

    insightface's rule: MXNet exports start with `Sub`/`_minus` and `Mul`/`_mul` nodes that
    normalise inside the graph, so they take raw 0..255 pixels; everything else takes
    (x - 127.5) / 127.5.
    """
    names = list(node_names)[:8]
    has_sub = any(n.startswith(("Sub", "_minus")) for n in names)
    has_mul = any(n.startswith(("Mul", "_mul")) for n in names)
    return (0.0, 1.0) if has_sub and has_mul else (127.5, 127.5)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row stays zero rather than becoming NaN."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, np.finfo(np.float32).tiny)).astype(np.float32)


def crops_to_blob(crops_rgb: np.ndarray, mean: float, std: float) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB crops as the (N, 3, S, S) float32 network input."""
    blob = (crops_rgb.astype(np.float32) - np.float32(mean)) / np.float32(std)
    return np.ascontiguousarray(blob.transpose(0, 3, 1, 2))


class ArcFaceRecognizer:
    """512-d identity embeddings from aligned crops, `batch_size` crops per run."""

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        name: str,
        first_node_names: Sequence[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise OptionError(f"batch size must be at least 1, got {batch_size}")
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise UnsupportedModelError(
                f"an ArcFace model has one input and one output, this one has "
                f"{len(inputs)} and {len(outputs)}"
            )
        shape = inputs[0].shape
        if (
            len(shape) != 4
            or shape[1] != 3
            or shape[2] != shape[3]
            or not isinstance(shape[2], int)
        ):
            raise UnsupportedModelError(
                f"an ArcFace model takes [N, 3, S, S] images, this one takes {shape}"
            )
        dim = outputs[0].shape[-1]
        if not isinstance(dim, int):
            raise UnsupportedModelError(f"the embedding size is not fixed: {outputs[0].shape}")
        self._session = session
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        # A fixed batch axis (e.g. 1) runs that many crops at a time, whatever was asked.
        fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.batch_size = fixed_batch or batch_size
        self._fixed_batch = fixed_batch is not None
        if fixed_batch is not None and fixed_batch != batch_size:
            log.info(
                "%s has a fixed batch of %d; batch size %d ignored", name, fixed_batch, batch_size
            )
        self.mean, self.std = input_normalisation(first_node_names)
        self.crop_px = int(shape[2])
        self.name = name
        self.dim = int(dim)

    def align(self, image_rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
        """(len(faces), S, S, 3) uint8 aligned crops."""
        image = as_rgb8(image_rgb)
        crops = [align_face(image, f.landmarks_xy, self.crop_px) for f in faces]
        return np.stack(crops) if crops else np.zeros((0, self.crop_px, self.crop_px, 3), np.uint8)

    def embed_crops(self, crops_rgb: np.ndarray) -> np.ndarray:
        """(N, dim) unit vectors for (N, S, S, 3) aligned RGB crops, in batches."""
        chunks = []
        for start in range(0, len(crops_rgb), self.batch_size):
            blob = crops_to_blob(crops_rgb[start : start + self.batch_size], self.mean, self.std)
            if self._fixed_batch and len(blob) < self.batch_size:
                # Pad the last chunk to the model's fixed batch; the padding rows are dropped.
                pad = np.zeros((self.batch_size - len(blob), *blob.shape[1:]), np.float32)
                out = self._run(np.concatenate([blob, pad]))[: len(blob)]
            else:
                out = self._run(blob)
            chunks.append(out.reshape(len(blob), -1))
        if not chunks:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(np.concatenate(chunks).astype(np.float32))

    def embed(self, image_rgb: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
        return self.embed_crops(self.align(image_rgb, faces))

    def embed_batch(
        self, items: Sequence[tuple[np.ndarray, Sequence[DetectedFace]]]
    ) -> list[np.ndarray]:
        """Embeddings of several images' faces, batched across images; one array per image."""
        crops = [self.align(image, faces) for image, faces in items]
        counts = [len(c) for c in crops]
        if not crops:
            return []
        flat = self.embed_crops(np.concatenate(crops))
        return np.split(flat, np.cumsum(counts)[:-1])

    def _run(self, blob: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run([self._output_name], {self._input_name: blob})[0])
