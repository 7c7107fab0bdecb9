"""Fitting a crop camera to a body-model fit from its 2D keypoints.

SPIN-style annotations give the SMPL fit (camera-frame orientation) and 2D keypoints, not the camera. As in
SPIN and DaNet, the camera is the paper's crop camera (focal 5000 px for a 224 px box crop, principal point
at the crop centre) and only its translation is unknown; with a fixed focal length each keypoint gives two
equations linear in the translation:

    f (X + tx) - (u - cx)(Z + tz) = 0,   f (Y + ty) - (v - cy)(Z + tz) = 0,

solved by weighted least squares (weights = keypoint visibility) with a weak prior on tz for stability.
"""

from __future__ import annotations

import numpy as np

REFERENCE_FOCAL, REFERENCE_CROP = 5000.0, 224.0


def crop_focal(crop_size: int, margin: float = 1.0) -> float:
    """Focal length (crop pixels) of the paper's camera for a crop whose box fills crop_size / margin pixels."""
    return REFERENCE_FOCAL * crop_size / (REFERENCE_CROP * margin)


def fit_translation(
    points: np.ndarray,
    keypoints: np.ndarray,
    weights: np.ndarray,
    focal: float | np.ndarray,
    principal: np.ndarray,
    prior_depth: float | np.ndarray | None = None,
    prior_weight: float = 1e-4,
) -> np.ndarray:
    """Camera translations that project body keypoints onto their 2D annotations.

    points: (B, N, 3) body keypoints in metres (camera-frame orientation, body at the origin);
    keypoints: (B, N, 2) pixels; weights: (B, N) >= 0 (visibility); focal: scalar or (B,) pixels;
    principal: (2,) or (B, 2) pixels; prior_depth: optional (B,) depth (metres) pulled towards with
    `prior_weight` (keeps the solve well-posed with fewer than two visible keypoints).
    Returns (B, 3) translations in metres.
    """
    points = np.asarray(points, dtype=np.float64)
    batch, count, _ = points.shape
    focal = np.broadcast_to(np.asarray(focal, dtype=np.float64), (batch,))
    principal = np.broadcast_to(np.asarray(principal, dtype=np.float64), (batch, 2))
    offset = np.asarray(keypoints, dtype=np.float64) - principal[:, None, :]  # (B, N, 2)
    w = np.sqrt(np.clip(np.asarray(weights, dtype=np.float64), 0.0, None))[..., None]  # (B, N, 1)

    # rows for x then y: [f, 0, -du] . t = du Z - f X ;  [0, f, -dv] . t = dv Z - f Y
    a = np.zeros((batch, count, 2, 3))
    a[..., 0, 0] = focal[:, None]
    a[..., 1, 1] = focal[:, None]
    a[..., :, 2] = -offset
    b = offset * points[..., 2:3] - focal[:, None, None] * points[..., :2]
    a = (a * w[..., None]).reshape(batch, 2 * count, 3)
    b = (b * w).reshape(batch, 2 * count)
    if prior_depth is None:
        # the body's extent filling the crop (whose width is about twice the principal point's x)
        extent = np.ptp(points[..., :2], axis=1).max(axis=1)
        prior_depth = focal * np.maximum(extent, 0.5) / (2.0 * principal[:, 0])
    prior = np.broadcast_to(np.asarray(prior_depth, dtype=np.float64), (batch,))
    scale = prior_weight * focal
    a = np.concatenate([a, np.tile(np.array([0.0, 0.0, 1.0]), (batch, 1, 1)) * scale[:, None, None]], axis=1)
    b = np.concatenate([b, (prior * scale)[:, None]], axis=1)
    gram = np.einsum("bki,bkj->bij", a, a)
    rhs = np.einsum("bki,bk->bi", a, b)
    return np.linalg.solve(gram, rhs[..., None])[..., 0]
