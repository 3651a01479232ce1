"""Five-point face alignment onto ArcFace's 112x112 template (insightface `norm_crop`).

The similarity transform (rotation, uniform scale, translation) is the least-squares fit of
Umeyama (1991), as scikit-image's `SimilarityTransform.estimate` computes it for insightface;
it is written out here so the result does not depend on a deprecated scikit-image call.
"""

from __future__ import annotations

import cv2
import numpy as np

ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],  # left eye (as seen in the image)
        [73.5318, 51.5014],  # right eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # left mouth corner
        [70.7299, 92.2041],  # right mouth corner
    ],
    dtype=np.float32,
)
"""Where insightface's ArcFace models expect the 5 landmarks in a 112x112 crop."""


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity matrix M minimising sum |M [src; 1] - dst|^2 over N>=2 point pairs."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / n
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[1] = -1.0  # a reflection fits better; force a rotation instead
    u, s, vt = np.linalg.svd(cov)
    rotation = u @ np.diag(d) @ vt
    src_var = (src_c**2).sum() / n
    scale = (s * d).sum() / src_var if src_var > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def arcface_matrix(landmarks_xy: np.ndarray, image_size: int = 112) -> np.ndarray:
    """The 2x3 matrix taking image pixels to an `image_size` ArcFace crop (a multiple of 112
    or of 128, the latter centred with insightface's 8/128 left margin)."""
    if landmarks_xy.shape != (5, 2):
        raise ValueError(f"expected (5, 2) landmarks, got {landmarks_xy.shape}")
    if image_size % 112 == 0:
        template = ARCFACE_TEMPLATE_112 * (image_size / 112.0)
    elif image_size % 128 == 0:
        ratio = image_size / 128.0
        template = ARCFACE_TEMPLATE_112 * ratio + np.float32((8.0 * ratio, 0.0))
    else:
        raise ValueError(f"crop size must be a multiple of 112 or 128, got {image_size}")
    return umeyama_similarity(landmarks_xy, template)


def align_face(image: np.ndarray, landmarks_xy: np.ndarray, image_size: int = 112) -> np.ndarray:
    """The `image_size` square crop with the landmarks on the template; outside is black."""
    matrix = arcface_matrix(landmarks_xy, image_size)
    return cv2.warpAffine(image, matrix, (image_size, image_size), borderValue=0.0)
