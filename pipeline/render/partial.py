"""Joint-centric partial IUV maps: RoI crops of a map around each joint, as a spatial transformer.

A RoI is a centre (x, y) in the normalised coordinates of `torch.nn.functional.affine_grid` ([-1, 1], x to
the right, y down, pixel-corner convention align_corners=False) and a scale: the fraction of the map's side
the RoI spans (scale 1 = the whole map, 0.25 = a quarter of it). The same functions crop predicted feature
maps in the network and ground-truth one-hot IUV maps for its supervision, so both are cut from one place.

Layouts: a global one-hot IUV map is (B, 75, H, W) = [I one-hot 0..24 | U per part | V per part]; a simplified
partial map of joint k keeps background + the 6 parts of PARTIAL_PART_SUBSETS[k] in each of I, U, V:
(B, 24, 21, h, w) = [I: bg, p1..p6 | U: bg, p1..p6 | V: bg, p1..p6] (U and V background channels are zero).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from pipeline.body.constants import NUM_PARTS, PARTIAL_PART_SUBSETS

IUV_CHANNELS = 3 * (NUM_PARTS + 1)  # 75


def roi_thetas(centers: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Affine matrices of the RoIs for `affine_grid`.

    Args:
        centers: (B, J, 2) RoI centres (x, y) in [-1, 1].
        scales: (B, J) fraction of the map side each RoI spans.
    Returns:
        (B, J, 2, 3) with theta = [[s, 0, cx], [0, s, cy]].
    """
    if centers.shape[:-1] != scales.shape or centers.shape[-1] != 2:
        raise ValueError(
            f"centers (B,J,2) and scales (B,J) disagree: {tuple(centers.shape)}, {tuple(scales.shape)}"
        )
    zeros = torch.zeros_like(scales)
    row0 = torch.stack([scales, zeros, centers[..., 0]], dim=-1)
    row1 = torch.stack([zeros, scales, centers[..., 1]], dim=-1)
    return torch.stack([row0, row1], dim=-2)


def crop_rois(
    maps: torch.Tensor,
    centers: torch.Tensor,
    scales: torch.Tensor,
    size: int | tuple[int, int],
    mode="bilinear",
    align_corners: bool = False,
) -> torch.Tensor:
    """Crop one RoI per joint from each map (zero outside the map).

    Args:
        maps: (B, C, H, W).
        centers: (B, J, 2) in [-1, 1]; scales: (B, J).
        size: output side h (= w) or (h, w).
        mode: "bilinear" for features/predictions, "nearest" for labels (one-hot maps stay one-hot).
        align_corners: the sampling convention (True: PyTorch 1.1's, which DaNet's reference code used).
    Returns:
        (B, J, C, h, w).
    """
    b, c = maps.shape[:2]
    j = centers.shape[1]
    h, w = (size, size) if isinstance(size, int) else size
    theta = roi_thetas(centers, scales).reshape(b * j, 2, 3).to(maps.dtype)
    grid = F.affine_grid(theta, [b * j, c, h, w], align_corners=align_corners)
    # The J grids of a sample are stacked along the output height, so each map is read in place: repeating
    # the map per joint would copy B*J*C*H*W values (tens of MB per batch) and sum them again in backward.
    grid = grid.reshape(b, j * h, w, 2)
    out = F.grid_sample(
        maps, grid, mode=mode, padding_mode="zeros", align_corners=align_corners
    )  # (B,C,J*h,w)
    return out.reshape(b, c, j, h, w).transpose(1, 2)


def partial_channel_index(subsets: Sequence[Sequence[int]] = PARTIAL_PART_SUBSETS) -> torch.Tensor:
    """(J, 21) channel of the global 75-channel map feeding each channel of each joint's simplified map.

    Background channels of I point at global channel 0 (they are recomputed by `simplify_partial`); the U/V
    background channels point at U/V channel 0, which is zero in a one-hot IUV map.
    """
    rows = []
    for parts in subsets:
        idx = [0, *parts]
        rows.append(idx + [p + NUM_PARTS + 1 for p in idx] + [p + 2 * (NUM_PARTS + 1) for p in idx])
    return torch.tensor(rows, dtype=torch.long)


def _first_occurrence_mask(subsets: Sequence[Sequence[int]]) -> torch.Tensor:
    """(J, P) True for the first time a part appears in its joint's subset (a subset may repeat a part)."""
    return torch.tensor([[p not in parts[:i] for i, p in enumerate(parts)] for parts in subsets])


def simplify_partial(
    partial: torch.Tensor, subsets: Sequence[Sequence[int]] = PARTIAL_PART_SUBSETS
) -> torch.Tensor:
    """Keep each joint's part subset of full partial maps.

    Args:
        partial: (B, J, 75, h, w) full one-hot-layout partial maps (e.g. from `crop_rois`).
    Returns:
        (B, J, 7 * 3, h, w). The I background channel is 1 - (sum of the kept parts, each counted once),
        so every pixel outside the subset (other parts, background, outside the image) is background.
    """
    b, j, c, h, w = partial.shape
    if c != IUV_CHANNELS or j != len(subsets):
        raise ValueError(f"expected (B, {len(subsets)}, {IUV_CHANNELS}, h, w), got {tuple(partial.shape)}")
    index = partial_channel_index(subsets).to(partial.device)  # (J, 21)
    gathered = torch.gather(partial, 2, index.view(1, j, -1, 1, 1).expand(b, j, index.shape[1], h, w))
    k = index.shape[1] // 3
    first = _first_occurrence_mask(subsets).to(partial.device, partial.dtype).view(1, j, k - 1, 1, 1)
    background = (1.0 - (gathered[:, :, 1:k] * first).sum(2)).clamp(0.0, 1.0)
    zero = torch.zeros_like(background)
    return torch.cat(
        [background.unsqueeze(2), gathered[:, :, 1:k], zero.unsqueeze(2), gathered[:, :, k + 1 : 2 * k]]
        + [zero.unsqueeze(2), gathered[:, :, 2 * k + 1 :]],
        dim=2,
    )


def partial_iuv(
    maps: torch.Tensor,
    centers: torch.Tensor,
    scales: torch.Tensor,
    size: int,
    simplified: bool = True,
    mode: str = "bilinear",
    subsets: Sequence[Sequence[int]] = PARTIAL_PART_SUBSETS,
    align_corners: bool = False,
) -> torch.Tensor:
    """Partial IUV maps of every joint from global one-hot-layout maps.

    Args:
        maps: (B, 75, H, W) global IUV maps (one-hot I, U/V in their part's channel).
        centers: (B, J, 2) in [-1, 1]; scales: (B, J) (see module doc).
        simplified: keep each joint's 6-part subset (21 channels) rather than all parts (75).
        mode: "nearest" for ground truth.
    Returns:
        (B, J, 21 or 75, size, size).
    """
    crops = crop_rois(maps, centers, scales, size, mode=mode, align_corners=align_corners)
    if not simplified:
        # Outside the image every channel is zero; make that background so the I channels stay a distribution.
        outside = (1.0 - crops[:, :, : NUM_PARTS + 1].sum(2)).clamp(0.0, 1.0)
        crops = torch.cat([crops[:, :, :1] + outside.unsqueeze(2), crops[:, :, 1:]], dim=2)
        return crops
    return simplify_partial(crops, subsets)


def gt_partial_iuv(
    gt_maps: torch.Tensor,
    centers: torch.Tensor,
    scales: torch.Tensor,
    size: int,
    simplified: bool = True,
    align_corners: bool = False,
) -> torch.Tensor:
    """Ground-truth partial maps cut from ground-truth global one-hot maps (nearest sampling keeps labels)."""
    return partial_iuv(
        gt_maps, centers, scales, size, simplified, mode="nearest", align_corners=align_corners
    )


def partial_index_labels(partial: torch.Tensor) -> torch.Tensor:
    """(B, J, h, w) int64 class of each pixel of one-hot partial maps (B, J, 3K, h, w): argmax over the I
    channels (first occurrence wins for a repeated part)."""
    k = partial.shape[2] // 3
    return partial[:, :, :k].argmax(2)
