"""The geometric conventions every stage shares, written once: crop camera, pixel centres, boxes and crops.

Everything that synthesises, crops, renders, trains on or predicts from a person imports these names
instead of writing the numbers again (the design note, docs/design.md, explains the data flow).

Pixel centres. Two coordinate frames are in use, and each has one name here:

* *Pixel coordinates* (OpenCV's, the pipeline's default): integer coordinates are pixel centres, so the
  centre of an image ``size`` pixels wide is :func:`pixel_centre` ``= (size - 1) / 2``. Keypoints, crop
  affines (pipeline.crop), the model's normalised crop coordinates and predict's cameras use it.
* *Screen coordinates* (the rasterizer's, pipeline/render/rasterize.py): pixel (row i, column j) covers
  [j, j+1) x [i, i+1) and is sampled at (j + 0.5, i + 0.5), so screen = pixel + :data:`SCREEN_OFFSET` and
  the image centre is :func:`screen_centre` ``= size / 2``. Cameras handed to the rasterizer use it.

Both name the same physical point; a camera written in one frame is moved to the other by the half pixel.

The crop camera (SPIN / DaNet). A network crop of :data:`REFERENCE_CROP` (224) pixels that the person box
fills has a pinhole camera of focal :data:`REFERENCE_FOCAL` (5000) pixels, principal point at the crop
centre; scaled to other sizes it keeps 5000 px per 224 px of *person box* (:func:`crop_focal`). The
network's weak-perspective output (s, tx, ty) (s: scale in normalised crop units [-1, 1]) is that camera with
translation ``[tx, ty, 2 f / (size s)]`` metres (:func:`weak_perspective_translation`).

Boxes and crops. A SPIN-style box is ``center`` (x, y) and ``scale`` = box side / :data:`BBOX_UNIT` (200)
pixels. The datasets pad the tight keypoint (or detector) box by :data:`BOX_PADDING` (1.2) to get that
box. The render stage then stores crops :data:`RENDER_CROP_MARGIN` (1.2, by default) times larger than the
(already padded) box, room for augmentation: the two 1.2 are different factors and multiply.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# --- pixel centres ---------------------------------------------------------------------------------------
SCREEN_OFFSET = 0.5  # screen coordinate (rasterizer) = pixel coordinate (OpenCV) + SCREEN_OFFSET


def pixel_centre(size: float) -> float:
    """The centre of an image ``size`` pixels wide in pixel coordinates (integers are pixel centres)."""
    return (size - 1) / 2.0


def screen_centre(size: float) -> float:
    """The centre of an image ``size`` pixels wide in the rasterizer's screen coordinates (centres at +0.5)."""
    return size / 2.0


# --- the crop camera -------------------------------------------------------------------------------------
REFERENCE_FOCAL = 5000.0  # focal length (pixels) of the paper's crop camera on a REFERENCE_CROP box crop
REFERENCE_CROP = 224.0  # side (pixels) of the network's crop, which the person box fills
NETWORK_CROP = 224  # the same side as an int: the loader's crops and the evaluation crop, pixels


def crop_focal(crop_size, margin: float = 1.0):
    """Focal length (crop pixels) of the paper's camera for a crop whose person box fills
    ``crop_size / margin`` pixels: ``5000 * crop_size / (224 * margin)``. ``crop_size`` may be an array."""
    return REFERENCE_FOCAL * crop_size / (REFERENCE_CROP * margin)


def weak_perspective_depth(
    scale, focal: float = REFERENCE_FOCAL, size: float = REFERENCE_CROP, eps: float = 0.0
):
    """Depth (metres) ``2 f / (size s + eps)`` of a body with weak-perspective scale ``s`` (array or tensor).

    ``eps = 0`` is the exact camera (renderer, predict); the model adds ``eps = 1e-9`` so that s = 0 gives a
    finite depth in training (:data:`MODEL_DEPTH_EPS`).
    """
    if eps:
        return 2 * focal / (size * scale + eps)
    return 2.0 * focal / (size * scale)


MODEL_DEPTH_EPS = 1e-9  # the model's guard in weak_perspective_depth (model.camera)


def weak_perspective_translation(
    cam: Any, focal: float = REFERENCE_FOCAL, size: float = REFERENCE_CROP, eps: float = 0.0
) -> Any:
    """(..., 3) weak-perspective (s, tx, ty) -> (..., 3) camera translation ``[tx, ty, 2 f / (size s)]`` in
    metres; a torch tensor gives a tensor, anything else a float64 numpy array."""
    if isinstance(cam, torch.Tensor):
        s, tx, ty = cam.unbind(-1)
        return torch.stack([tx, ty, weak_perspective_depth(s, focal, size, eps)], dim=-1)
    cam = np.asarray(cam, dtype=np.float64)
    depth = weak_perspective_depth(cam[..., 0], focal, size, eps)
    return np.stack([cam[..., 1], cam[..., 2], depth], axis=-1)


# --- boxes and crops -------------------------------------------------------------------------------------
BBOX_UNIT = 200.0  # SPIN: scale = box side / 200 pixels
BOX_PADDING = 1.2  # SPIN: box side = 1.2 x the tight keypoint / detector box's longer side
RENDER_CROP_MARGIN = 1.2  # render_iuv's default stored crop side / box side (room for augmentation)
