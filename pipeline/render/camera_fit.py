"""Fitting a crop camera to a body-model fit from its 2D keypoints.

SPIN-style annotations give the SMPL fit (camera-frame orientation) and 2D keypoints, not the camera. As in
SPIN and DaNet, the camera is the paper's crop camera (focal 5000 px for a 224 px box crop, principal point
at the crop centre) and only its translation is unknown; with a fixed focal length each keypoint gives two
equations linear in the translation:

    f (X + tx) - (u - cx)(Z + tz) = 0,   f (Y + ty) - (v - cy)(Z + tz) = 0,

solved by weighted least squares (weights = keypoint visibility) with a weak prior on tz for stability.

A keypoint with non-finite coordinates or weight counts as invisible. A sample with no visible keypoint has
no solution (the prior alone fixes only tz): its translation is NaN, and the callers decide (render rejects
the row, training drops the sample's 2D terms). Two visible keypoints are the least that fix the depth from
the data (their projected distance gives the scale): `fit_problem` names rows below `MIN_FIT_KEYPOINTS`.
"""

from __future__ import annotations

import numpy as np

MIN_FIT_KEYPOINTS = 2  # visible keypoints with finite coordinates a row needs for a camera fit


def usable_keypoints(keypoints: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(..., N) bool: keypoints with a positive finite weight and finite (x, y) ((..., N, 2) pixels)."""
    keypoints, weights = np.asarray(keypoints, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    return np.isfinite(weights) & (weights > 0) & np.isfinite(keypoints).all(-1)


def fit_problem(keypoints: np.ndarray, weights: np.ndarray) -> str | None:
    """Why one row's (N, 2) keypoints and (N,) weights cannot fix a camera, or None when they can."""
    count = int(usable_keypoints(keypoints, weights).sum())
    if count >= MIN_FIT_KEYPOINTS:
        return None
    return (
        f"{count} visible 2D keypoint(s) with finite coordinates; the camera fit needs at least "
        f"{MIN_FIT_KEYPOINTS}"
    )


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
    Returns (B, 3) translations in metres; NaN rows for samples without a visible keypoint.
    """
    points = np.asarray(points, dtype=np.float64)
    batch, count, _ = points.shape
    keypoints = np.asarray(keypoints, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    broken = ~(np.isfinite(keypoints).all(-1) & np.isfinite(weights))
    if broken.any():  # non-finite keypoints or weights count as invisible; finite inputs stay bit-for-bit
        keypoints = np.where(broken[..., None], 0.0, keypoints)
        weights = np.where(broken, 0.0, weights)
    solvable = (weights > 0).any(axis=1)
    if not solvable.all():  # no visible keypoint: NaN translation, the other samples solved alone
        out = np.full((batch, 3), np.nan)
        if solvable.any():

            def rows(value, tail: tuple[int, ...]) -> np.ndarray:
                return np.broadcast_to(np.asarray(value, np.float64), (batch, *tail))[solvable]

            depth = None if prior_depth is None else rows(prior_depth, ())
            out[solvable] = fit_translation(
                points[solvable], keypoints[solvable], weights[solvable], rows(focal, ()),
                rows(principal, (2,)), depth, prior_weight,
            )  # fmt: skip
        return out
    focal = np.broadcast_to(np.asarray(focal, dtype=np.float64), (batch,))
    principal = np.broadcast_to(np.asarray(principal, dtype=np.float64), (batch, 2))
    offset = keypoints - principal[:, None, :]  # (B, N, 2)
    w = np.sqrt(np.clip(weights, 0.0, None))[..., None]  # (B, N, 1)

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
