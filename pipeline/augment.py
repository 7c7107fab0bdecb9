"""Training augmentation applied consistently to a sample's image, IUV map, keypoints and SMPL pose.

Geometry (one affine per sample, from stored-crop pixels to network-input pixels, then an optional mirror):
- scale and translation jitter of the person box, in-plane rotation about the box centre, crop to
  ``out_size``;
- horizontal flip: image mirrored; IUV through ``flip_iuv_fn`` (mirrors the map *and* swaps left/right parts
  and their U, V); keypoints mirrored with ``SPIN24_FLIP``; SMPL pose through ``SMPL_JOINT_FLIP`` with the
  y and z axis-angle components negated; kp3d x negated.
- rotation by ``rot`` degrees turns image points by ``[[cos, -sin], [sin, cos]]`` (x right, y down) about
  the box centre; the SMPL global orientation and kp3d, in camera axes (x right, y down, z forward), turn by
  the same matrix about the camera's z axis, so projections stay consistent.
Colour jitter multiplies each RGB channel by a factor in ``[1 - c, 1 + c]`` (rounded, saturated at 255;
applied as a 256-entry lookup table).

Pixel convention: integer coordinates are pixel centres (as in :mod:`pipeline.crop`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.body.constants import SMPL_JOINT_FLIP, SPIN24_FLIP
from pipeline.conventions import NETWORK_CROP, pixel_centre
from pipeline.crop import apply_affine, compose_affine, warp
from pipeline.dp_points import augment_dp

FlipIUVFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random augmentation; ``enabled=False`` gives the plain centre crop (evaluation)."""

    out_size: int = NETWORK_CROP  # loader crop side (pixels), as model.training.targets expects
    iuv_size: int = 56  # network IUV side (pixels)
    enabled: bool = True
    flip_prob: float = 0.5
    rot_prob: float = 0.6
    rot_deg: float = 30.0  # std of the rotation angle, clipped at 2 std
    scale_jitter: float = 0.25  # box side factor in [1 - s, 1 + s]
    trans_jitter: float = 0.1  # box centre shift, fraction of the box side, per axis
    colour_jitter: float = 0.4  # per-channel factor in [1 - c, 1 + c]


@dataclass(frozen=True)
class AugmentParams:
    """One sample's draw: mirror?, rotation (degrees), box scale factor, box shift (fractions), RGB gains."""

    flip: bool = False
    rot: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)


def sample_params(rng: np.random.Generator, cfg: AugmentConfig) -> AugmentParams:
    """Draw one sample's augmentation from ``cfg``'s ranges (identity when ``cfg.enabled`` is false)."""
    if not cfg.enabled:
        return AugmentParams()
    rot = 0.0
    if rng.uniform() < cfg.rot_prob:
        rot = float(np.clip(rng.normal(0.0, cfg.rot_deg), -2 * cfg.rot_deg, 2 * cfg.rot_deg))
    c = cfg.colour_jitter
    return AugmentParams(
        flip=bool(rng.uniform() < cfg.flip_prob),
        rot=rot,
        scale=float(rng.uniform(1 - cfg.scale_jitter, 1 + cfg.scale_jitter)),
        shift=tuple(float(v) for v in rng.uniform(-cfg.trans_jitter, cfg.trans_jitter, 2)),
        colour=tuple(float(v) for v in rng.uniform(1 - c, 1 + c, 3)),
    )


# ---------------------------------------------------------------------------------------------------------
# transforms


def rotation_z(deg: float) -> np.ndarray:
    """(3, 3) rotation by ``deg`` degrees about z, acting on (x, y) like the image rotation."""
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def crop_affine(params: AugmentParams, crop_size: int, box_size: float, out_size: int) -> np.ndarray:
    """(2, 3) affine from stored-crop pixels to ``out_size`` output pixels, without the mirror.

    ``box_size`` is the person box side in stored-crop pixels (``crop_size / margin``).
    """
    box = box_size * params.scale
    centre = np.full(2, pixel_centre(crop_size)) + np.asarray(params.shift) * box
    rot = rotation_z(params.rot)[:2, :2] * (out_size / box)
    return np.concatenate([rot, (pixel_centre(out_size) - rot @ centre)[:, None]], axis=1)


def resize_affine(src_size: int, dst_size: int) -> np.ndarray:
    """(2, 3) affine from ``src_size`` pixels to ``dst_size`` pixels of the same square (pixel centres)."""
    k = dst_size / src_size
    return np.array([[k, 0.0, 0.5 * k - 0.5], [0.0, k, 0.5 * k - 0.5]])


def mirror_affine(width: int) -> np.ndarray:
    """(2, 3) affine of a horizontal mirror of an image ``width`` pixels wide: x -> width - 1 - x."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def flip_keypoints(kp: np.ndarray, width: int) -> np.ndarray:
    """Mirror SPIN-24 2D keypoints (24, 2+) in an image ``width`` pixels wide, swapping left and right."""
    out = kp[list(SPIN24_FLIP)].copy()
    out[:, 0] = (width - 1) - out[:, 0]
    return out


def flip_kp3d(kp3d: np.ndarray) -> np.ndarray:
    """Mirror SPIN-24 3D joints (24, 3+) through the x = 0 plane, swapping left and right."""
    out = kp3d[list(SPIN24_FLIP)].copy()
    out[:, 0] = -out[:, 0]
    return out


def flip_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror an SMPL pose (72,) axis-angle: swap left/right joints and negate the y, z components."""
    out = pose.reshape(24, 3)[list(SMPL_JOINT_FLIP)].copy()
    out[:, 1:] = -out[:, 1:]
    return out.reshape(72)


def rotate_pose(pose: np.ndarray, deg: float) -> np.ndarray:
    """Turn an SMPL pose's global orientation (pose[:3], axis-angle) by ``deg`` degrees about camera z."""
    out = pose.astype(np.float64, copy=True)
    root, _ = cv2.Rodrigues(out[:3].reshape(3, 1))
    out[:3] = cv2.Rodrigues(rotation_z(deg) @ root)[0].reshape(3)
    return out


def rotate_kp3d(kp3d: np.ndarray, deg: float) -> np.ndarray:
    """Turn 3D joints (24, 3+) by ``deg`` degrees about camera z; extra columns are kept."""
    out = kp3d.astype(np.float64, copy=True)
    out[:, :3] = out[:, :3] @ rotation_z(deg).T
    return out


_RAMP = np.arange(256, dtype=np.uint8).reshape(1, 256, 1).repeat(3, axis=2)


def colour_lut(colour: tuple[float, float, float]) -> np.ndarray:
    """(1, 256, 3) uint8 lookup table of the per-channel colour gains: ``round(v * gain)`` saturated.

    Made by ``cv2.multiply`` itself on the 256 values, so ``cv2.LUT(image, colour_lut(c))`` gives exactly
    the pixels of ``cv2.multiply(image, (*c, 0), dtype=CV_8U)`` at a quarter of its cost (tests compare
    the two on every value).
    """
    return cv2.multiply(_RAMP, (*colour, 0.0), dtype=cv2.CV_8U)


# ---------------------------------------------------------------------------------------------------------
# one sample


def augment_sample(
    sample: dict,
    params: AugmentParams,
    cfg: AugmentConfig,
    flip_iuv_fn: FlipIUVFn | None = None,
    *,
    pixels: bool = True,
) -> dict:
    """Apply ``params`` to a decoded sample (see :func:`pipeline.loader.decode_sample`); returns a new dict.

    In: ``image`` (S, S, 3) uint8 RGB crop, ``iuv`` (S, S, 3) uint8 or None, ``kp2d`` (24, 3) crop pixels,
    ``kp3d`` (24, 4), ``smpl`` (82,) pose + betas, ``margin`` (crop side / box side).
    Out: ``image`` (out, out, 3) uint8, ``iuv`` (iuv_size, iuv_size, 3) uint8 or None, ``kp2d`` (24, 3) in
    output pixels, ``kp3d``, ``smpl`` transformed alike; other keys are passed through.

    ``pixels=False`` (``data.augment_on: device``) does everything exactly as above, the IUV map included
    (its nearest warp to ``iuv_size`` and flip are cheap here and need the body's flip table), but leaves
    ``image`` as the stored crop and adds what :mod:`pipeline.augment_torch` needs to warp it on the
    training device: ``input_to_crop`` (2, 3) float64, the inverse of the image's affine (mirror included:
    network-input pixel -> stored-crop pixel; OpenCV's own ``cv2.invertAffineTransform``, what
    ``cv2.warpAffine`` computes inside) and ``colour`` (3,) float32 RGB gains.
    """
    size = sample["image"].shape[0]
    matrix = crop_affine(params, size, size / sample["margin"], cfg.out_size)
    # the image's mirror goes into its warp (no extra copy); the IUV map is mirrored by flip_iuv_fn
    image_matrix = compose_affine(mirror_affine(cfg.out_size), matrix) if params.flip else matrix
    iuv_matrix = compose_affine(resize_affine(cfg.out_size, cfg.iuv_size), matrix)
    out = dict(sample)
    kp2d = sample["kp2d"].astype(np.float64, copy=True)
    kp2d[:, :2] = apply_affine(matrix, kp2d[:, :2])
    kp3d = rotate_kp3d(sample["kp3d"], params.rot) if params.rot else sample["kp3d"].astype(np.float64)
    smpl = sample["smpl"].astype(np.float64, copy=True)
    if params.rot:
        smpl[:72] = rotate_pose(smpl[:72], params.rot)
    if params.flip:
        kp2d = flip_keypoints(kp2d, cfg.out_size)
        kp3d = flip_kp3d(kp3d)
        smpl[:72] = flip_pose(smpl[:72])
    if sample.get("dp") is not None or sample.get("dpmask") is not None:  # DensePose labels (dp_points.py)
        out.update(augment_dp(sample, matrix, iuv_matrix, params.flip, cfg.out_size, cfg.iuv_size,
                              flip_iuv_fn or default_flip_iuv))  # fmt: skip
    out["iuv"] = warp_iuv(sample.get("iuv"), iuv_matrix, params.flip, cfg.iuv_size, flip_iuv_fn)
    if pixels:
        out["image"] = warp_image(sample["image"], image_matrix, params.colour, cfg.out_size)
    else:
        out.update(
            input_to_crop=cv2.invertAffineTransform(image_matrix),
            colour=np.asarray(params.colour, dtype=np.float32),
        )
    out.update(
        kp2d=kp2d.astype(np.float32),
        kp3d=kp3d.astype(np.float32),
        smpl=smpl.astype(np.float32),
        flip=params.flip,
        rot=params.rot,
    )
    return out


def warp_image(
    image: np.ndarray, matrix: np.ndarray, colour: tuple[float, float, float], size: int
) -> np.ndarray:
    """(S, S, 3) uint8 stored crop -> (size, size, 3) uint8: bilinear warp by ``matrix``, then the gains."""
    out = warp(image, matrix, size)
    return cv2.LUT(out, colour_lut(colour)) if tuple(colour) != (1.0, 1.0, 1.0) else out


def warp_iuv(
    iuv: np.ndarray | None, matrix: np.ndarray, flip: bool, size: int, flip_iuv_fn: FlipIUVFn | None
) -> np.ndarray | None:
    """(S, S, 3) uint8 stored IUV -> (size, size, 3): nearest warp by ``matrix``, mirrored if ``flip``."""
    if iuv is None:
        return None
    out = warp(iuv, matrix, size, nearest=True)
    return (flip_iuv_fn or default_flip_iuv)(out) if flip else out


def make_flip_iuv_fn(body: str = "anny-smpl24", parts: str | None = None) -> FlipIUVFn:
    """``flip_iuv_fn`` for IUV maps rendered from ``body`` with dense ``parts`` (names or file paths; parts
    default to ``body``): pipeline.render.flip's mirror table for them, built once and cached on disk."""
    from pipeline.body import load_body_model, load_dense_parts
    from pipeline.render.flip import build_flip_table, flip_iuv

    table = build_flip_table(load_dense_parts(parts or body), load_body_model(body).vertex_mirror)
    return functools.partial(flip_iuv, table=table)


@functools.lru_cache(maxsize=1)
def _builtin_flip_iuv_fn() -> FlipIUVFn:
    return make_flip_iuv_fn()


def default_flip_iuv(iuv: np.ndarray) -> np.ndarray:
    """Mirror an (H, W, 3) uint8 IUV map of the built-in body (``anny-smpl24``); the mirror table is
    loaded once per process. For maps rendered from another body pass ``make_flip_iuv_fn(...)`` instead."""
    return _builtin_flip_iuv_fn()(iuv)
