"""The weak-perspective camera of the crop, used as a perspective camera (SPIN / DaNet convention).

Camera frame: x right, y down, z forward (OpenCV); a prediction (s, tx, ty) places the body at
t = [tx, ty, 2 f / (S * s)] for a crop of side S pixels and focal length f (5000), principal point at the crop
centre. Projected points are returned in the crop's normalised coordinates [-1, 1].
"""

from __future__ import annotations

import torch

from pipeline.conventions import MODEL_DEPTH_EPS, REFERENCE_CROP, REFERENCE_FOCAL
from pipeline.conventions import weak_perspective_translation as _translation


def weak_perspective_translation(
    cam: torch.Tensor, focal: float = REFERENCE_FOCAL, size: float = REFERENCE_CROP
) -> torch.Tensor:
    """(B, 3) (s, tx, ty) -> (B, 3) camera translation [tx, ty, 2 f / (size * s + 1e-9)] in metres
    (pipeline.conventions, with the model's guard MODEL_DEPTH_EPS against s = 0)."""
    return _translation(cam, focal, size, MODEL_DEPTH_EPS)


def project(
    points: torch.Tensor, cam: torch.Tensor, focal: float = REFERENCE_FOCAL, size: float = REFERENCE_CROP
) -> torch.Tensor:
    """(B, N, 3) body-frame points (metres) -> (B, N, 2) normalised crop coordinates in [-1, 1]."""
    p = points + weak_perspective_translation(cam, focal, size)[:, None]
    return focal * p[..., :2] / p[..., 2:3].clamp_min(1e-6) / (size / 2)
