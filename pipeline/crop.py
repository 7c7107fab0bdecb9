"""Square person crops from (center, scale) boxes, with the affine transform that made them.

Pixel convention used everywhere in the pipeline: integer coordinates are pixel centres (OpenCV's), x to the
right, y down. A crop transform is a (2, 3) float64 matrix ``M`` mapping image pixels to crop pixels,
``[u, v] = M @ [x, y, 1]``; keypoints and cameras follow a crop by the same matrix.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.conventions import BBOX_UNIT, pixel_centre


def crop_transform(center: np.ndarray, scale: float, crop_size: int, margin: float = 1.0) -> np.ndarray:
    """Affine transform (2, 3) from image pixels to a ``crop_size`` square crop around a person.

    The crop covers a square of side ``200 * scale * margin`` image pixels centred on ``center`` (2,), so the
    person box (side ``200 * scale``) fills ``crop_size / margin`` crop pixels; the rest is room for
    augmentation. The box centre lands on the crop's centre ``(crop_size - 1) / 2``.
    """
    center = np.asarray(center, dtype=np.float64).reshape(2)
    side = BBOX_UNIT * float(scale) * float(margin)
    if not np.isfinite(side) or side <= 0 or not np.all(np.isfinite(center)):
        raise ValueError(f"invalid crop box: center={center.tolist()} scale={scale} margin={margin}")
    s = crop_size / side
    half = pixel_centre(crop_size)
    return np.array([[s, 0.0, half - s * center[0]], [0.0, s, half - s * center[1]]], dtype=np.float64)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine ``matrix`` to points (..., 2); returns (..., 2) float64."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2, 3) affine equal to applying ``inner`` (2, 3) first, then ``outer`` (2, 3)."""
    linear = outer[:, :2] @ inner[:, :2]
    return np.concatenate([linear, (outer[:, :2] @ inner[:, 2:]) + outer[:, 2:]], axis=1)


def warp(image: np.ndarray, matrix: np.ndarray, size: int, *, nearest: bool = False) -> np.ndarray:
    """Warp ``image`` (H, W[, C]) by the (2, 3) ``matrix`` into a (size, size[, C]) array; outside is 0.

    Bilinear for photographs, ``nearest=True`` for label maps (IUV) whose values must not be blended.
    """
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(
        image, matrix, (size, size), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def crop_keypoints(matrix: np.ndarray, kp: np.ndarray) -> np.ndarray:
    """Move keypoints (J, 2+) into the crop by ``matrix``; extra columns (visibility) are kept as they are."""
    out = np.array(kp, dtype=np.float32, copy=True)
    out[:, :2] = apply_affine(matrix, kp[:, :2])
    return out
