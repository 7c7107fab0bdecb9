"""DensePose-COCO point supervision through the pipeline: manifest row -> shard members -> augmented batch.

A person annotated in DensePose-COCO carries ~100 points, each with a body part I (1..24) and the part's
chart coordinates U, V in [0, 1], plus 14 coarse-part masks. Here they travel as:

- **points**: float32 (N, 5), columns :data:`POINT_COLUMNS` = x, y, I, U, V; x, y in the pixels of the image
  they belong to (stored crop, then network input), pixel centres at integers (:mod:`pipeline.crop`);
- **coarse mask**: uint8 (H, W) label map 0..14 (0 background, :data:`NUM_COARSE_PARTS` coarse parts in
  DensePose's order, see ``PART_TO_COARSE``) on the same pixel grid as the IUV map.

Shard members (written by :func:`shard_members`, absent when the row has no DensePose labels):
``dp.npy`` the points in stored-crop pixels; ``dpmask.png`` the coarse mask at the stored crop's size
(single-channel PNG). A row's mask is the 14 RLEs of its ``mask`` JSON (256 x 256 over the person box,
:data:`DP_BOX_SIDE`), painted in order so that later parts cover earlier ones, as DensePose's own
``GetDensePoseMask`` does, then moved into the crop.

The augmentation moves both exactly as the image: the points by the crop affine (dropped when they leave the
output), the mask warped with nearest sampling onto the IUV grid; a mirror flips x, swaps every part with its
mirror part and maps U, V through the same table as the dense IUV flip (the ``flip_iuv_fn`` of
:mod:`pipeline.augment`, applied to the points as a one-pixel-wide IUV column, so U, V are rounded to the
map's 1/255 steps on flipped samples), and swaps the mask's coarse labels (:data:`COARSE_FLIP`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from pipeline.body.constants import NUM_COARSE_PARTS, NUM_PARTS, PART_FLIP, PART_TO_COARSE
from pipeline.crop import apply_affine, compose_affine, warp

POINT_COLUMNS = ("x", "y", "I", "U", "V")
DP_BOX_SIDE = 256.0  # DensePose-COCO's box frame: dp_x, dp_y and the masks span 0..256 over the person box
POINTS_MEMBER = "dp.npy"
MASK_MEMBER = "dpmask.png"


def _coarse_flip() -> tuple[int, ...]:
    """Coarse label -> its mirror's, read off the fine tables (a coarse part holds fine parts of one side)."""
    out = [0] * (NUM_COARSE_PARTS + 1)
    for fine, coarse in enumerate(PART_TO_COARSE):
        out[coarse] = PART_TO_COARSE[PART_FLIP[fine]]
    return tuple(out)


COARSE_FLIP: tuple[int, ...] = _coarse_flip()


# ---------------------------------------------------------------------------------------------------------
# manifest row -> stored crop


def points_from_row(row: dict, matrix: np.ndarray) -> np.ndarray | None:
    """(N, 5) float32 points of a manifest row (dp_* in image pixels) in crop pixels by the (2, 3) ``matrix``;
    None when the row has no DensePose points."""
    if row.get("dp_x") is None:
        return None
    cols = [np.asarray(row[k], np.float64).reshape(-1) for k in ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")]
    if len({c.size for c in cols}) != 1:
        raise ValueError("field dp_x: DensePose point lists differ in length")
    points = np.stack(cols, axis=1)
    points[:, :2] = apply_affine(matrix, points[:, :2])
    return validate_points(points.astype(np.float32), "field dp_x/dp_y/dp_I/dp_U/dp_V")


def _decode_rle(rle: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if isinstance(rle.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    return mask_utils.decode(rle)


def box_mask(dp_masks: Sequence[dict | None]) -> np.ndarray | None:
    """(256, 256) uint8 coarse labels of DensePose's 14 RLE masks over the box (None entries: part absent);
    later parts paint over earlier ones. None when no mask is given."""
    if len(dp_masks) != NUM_COARSE_PARTS:
        raise ValueError(f"field mask: dp_masks has {len(dp_masks)} entries, expected {NUM_COARSE_PARTS}")
    out = None
    for label, rle in enumerate(dp_masks, start=1):
        if not rle:
            continue
        m = _decode_rle(rle)
        if m.shape != (int(DP_BOX_SIDE), int(DP_BOX_SIDE)):
            raise ValueError(f"field mask: dp_masks[{label - 1}] is {m.shape}, expected 256 x 256")
        out = np.zeros(m.shape, np.uint8) if out is None else out
        out[m > 0] = label
    return out


def box_to_image(bbox: Sequence[float]) -> np.ndarray:
    """(2, 3) affine from the 256 x 256 box frame's pixel indices to image pixels: box pixel j spans
    [j, j + 1) of the 0..256 frame (the points' frame), so its centre j + 0.5 lands at x + (j + 0.5) w / 256."""
    x, y, w, h = (float(v) for v in bbox)
    kx, ky = w / DP_BOX_SIDE, h / DP_BOX_SIDE
    return np.array([[kx, 0.0, x + 0.5 * kx], [0.0, ky, y + 0.5 * ky]])


def mask_from_row(row: dict, matrix: np.ndarray, crop_size: int) -> np.ndarray | None:
    """(crop_size, crop_size) uint8 coarse labels of a row's ``mask`` JSON (bbox + dp_masks) in the crop;
    None when the row carries no coarse masks."""
    if not row.get("mask"):
        return None
    doc = json.loads(row["mask"])
    if not doc.get("dp_masks") or "bbox" not in doc:
        return None
    labels = box_mask(doc["dp_masks"])
    if labels is None:
        return None
    return warp(labels, compose_affine(matrix, box_to_image(doc["bbox"])), crop_size, nearest=True)


def check_row(row: dict) -> None:
    """Raise ValueError naming the field when a row's DensePose points or masks are malformed (render_iuv
    rejects the row instead of failing the shard); rows without them pass."""
    points_from_row(row, np.eye(2, 3))
    if row.get("mask"):
        try:
            doc = json.loads(row["mask"])
        except json.JSONDecodeError as e:
            raise ValueError(f"field mask: not JSON ({e})") from e
        if doc.get("dp_masks"):
            box_mask(doc["dp_masks"])


def shard_members(row: dict, matrix: np.ndarray, crop_size: int) -> dict[str, bytes]:
    """``dp.npy`` and ``dpmask.png`` of a manifest row (only those it has labels for; {} for most rows)."""
    members: dict[str, bytes] = {}
    points = points_from_row(row, matrix)
    if points is not None:
        members[POINTS_MEMBER] = encode_points(points)
    mask = mask_from_row(row, matrix, crop_size)
    if mask is not None:
        members[MASK_MEMBER] = encode_mask(mask)
    return members


# ---------------------------------------------------------------------------------------------------------
# member encoding


def validate_points(points: np.ndarray, where: str = "dp.npy") -> np.ndarray:
    """Check an (N, 5) point array (finite, I in 1..24, U and V in [0, 1]); returns it, raises ValueError."""
    if points.ndim != 2 or points.shape[1] != len(POINT_COLUMNS):
        raise ValueError(f"{where}: points must be (N, 5) x, y, I, U, V, got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError(f"{where}: NaN or inf in DensePose points")
    part = points[:, 2]
    if ((part < 1) | (part > NUM_PARTS) | (part != np.round(part))).any():
        raise ValueError(f"{where}: DensePose part index outside 1..{NUM_PARTS}")
    if ((points[:, 3:] < 0) | (points[:, 3:] > 1)).any():
        raise ValueError(f"{where}: DensePose U or V outside [0, 1]")
    return points


def encode_points(points: np.ndarray) -> bytes:
    """``.npy`` bytes of (N, 5) float32 points."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(validate_points(np.asarray(points, np.float32))), allow_pickle=False)
    return buf.getvalue()


def decode_points(data: bytes) -> np.ndarray:
    """(N, 5) float32 points from ``dp.npy`` bytes; raises ValueError when malformed."""
    points = np.load(io.BytesIO(data), allow_pickle=False)
    if points.dtype != np.float32:
        raise ValueError(f"dp.npy: dtype {points.dtype}, expected float32")
    return validate_points(points.reshape(-1, len(POINT_COLUMNS)) if points.size == 0 else points)


def encode_mask(mask: np.ndarray) -> bytes:
    """Lossless single-channel PNG bytes of an (H, W) uint8 coarse label map (0..14)."""
    if mask.dtype != np.uint8 or mask.ndim != 2 or int(mask.max(initial=0)) > NUM_COARSE_PARTS:
        raise ValueError(f"coarse mask must be (H, W) uint8 in 0..{NUM_COARSE_PARTS}, got {mask.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(mask))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def decode_mask(data: bytes) -> np.ndarray:
    """(H, W) uint8 coarse labels from ``dpmask.png`` bytes; raises ValueError when malformed."""
    mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError("dpmask.png: not a decodable single-channel 8-bit PNG")
    if int(mask.max(initial=0)) > NUM_COARSE_PARTS:
        raise ValueError(f"dpmask.png: label {int(mask.max())} > {NUM_COARSE_PARTS}")
    return mask


# ---------------------------------------------------------------------------------------------------------
# augmentation


def transform_points(points: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Move points by a (2, 3) affine into a ``size`` square; those landing outside it are dropped."""
    out = points.copy()
    out[:, :2] = apply_affine(matrix, points[:, :2])
    inside = ((out[:, :2] >= -0.5) & (out[:, :2] < size - 0.5)).all(1)
    return out[inside]


def flip_points(
    points: np.ndarray, width: int, flip_iuv_fn: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Mirror points in an image ``width`` pixels wide: x -> width - 1 - x, and (I, U, V) through the dense
    IUV flip ``flip_iuv_fn`` (its part swap and UV table), fed the points as an (N, 1, 3) uint8 IUV column."""
    out = points.copy()
    out[:, 0] = (width - 1) - points[:, 0]
    codes = np.empty((len(points), 1, 3), np.uint8)
    codes[:, 0, 0] = points[:, 2]
    codes[:, 0, 1:] = np.clip(np.rint(points[:, 3:] * 255.0), 0, 255)
    flipped = flip_iuv_fn(codes)[:, 0]
    out[:, 2] = flipped[:, 0]
    out[:, 3:] = flipped[:, 1:] / 255.0
    return out


def flip_mask(mask: np.ndarray) -> np.ndarray:
    """Mirror an (H, W) coarse label map left <-> right, swapping left and right coarse parts."""
    return np.asarray(COARSE_FLIP, np.uint8)[mask[:, ::-1]]


def augment_dp(
    sample: dict,
    matrix: np.ndarray,
    map_matrix: np.ndarray,
    flip: bool,
    out_size: int,
    map_size: int,
    flip_iuv_fn: Callable[[np.ndarray], np.ndarray],
) -> dict:
    """A sample's ``dp`` points and ``dpmask`` after the augmentation: ``matrix`` (2, 3) stored crop ->
    ``out_size`` input pixels, ``map_matrix`` stored crop -> ``map_size`` IUV grid, then the mirror if ``flip``.
    Keys whose value is None stay None."""
    points, mask = sample.get("dp"), sample.get("dpmask")
    if points is not None:
        points = transform_points(points, matrix, out_size)
        points = flip_points(points, out_size, flip_iuv_fn) if flip and len(points) else points
    if mask is not None:
        mask = warp(mask, map_matrix, map_size, nearest=True)
        mask = flip_mask(mask) if flip else mask
    return {"dp": points, "dpmask": mask}


# ---------------------------------------------------------------------------------------------------------
# batching


def collate_dp(samples: Sequence[dict], map_size: int) -> dict:
    """Batch entries of the samples' points and masks.

    ``dp_points`` float32 (B, Nmax, 5) (padding rows 0, Nmax >= 1, the most points of any sample);
    ``dp_count`` int64 (B,) real points per sample (0 without labels); ``has_dp`` bool (B,);
    ``dpmask`` uint8 (B, map_size, map_size) coarse labels (0 where absent), ``has_dpmask`` bool (B,)."""
    import torch

    n = len(samples)
    counts = [0 if s.get("dp") is None else len(s["dp"]) for s in samples]
    points = torch.zeros(n, max(1, *counts), len(POINT_COLUMNS))
    masks = torch.zeros(n, map_size, map_size, dtype=torch.uint8)
    has_mask = torch.zeros(n, dtype=torch.bool)
    for i, s in enumerate(samples):
        if counts[i]:
            points[i, : counts[i]] = torch.from_numpy(np.asarray(s["dp"], np.float32))
        if s.get("dpmask") is not None:
            masks[i] = torch.from_numpy(s["dpmask"])
            has_mask[i] = True
    return {
        "dp_points": points,
        "dp_count": torch.tensor(counts, dtype=torch.int64),
        "has_dp": torch.tensor([s.get("dp") is not None for s in samples]),
        "dpmask": masks,
        "has_dpmask": has_mask,
    }
