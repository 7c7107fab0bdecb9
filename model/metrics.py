"""Evaluation metrics, batched torch, in millimetres (inputs in metres).

- MPJPE: mean joint distance (optionally after subtracting a root joint from each skeleton).
- PA-MPJPE: MPJPE after the similarity (scale, rotation, translation) Procrustes alignment of pred to gt.
- PVE: mean vertex distance. The paper's PVE-S and PVE-P (pose or shape set to zero in both models) need
  the models' parameters and live in model.evaluation; here are the alignment errors that once stood in for
  them: after aligning scale and translation (`pve_scale_aligned`) or after similarity Procrustes
  (`pve_procrustes`).
- Joint errors take an optional (B, N) mask of the ground-truth joints that are labelled.
- COCO OKS between 2D keypoint sets (for keypoint AP).
- IUV maps: the share of a person's pixels given the right part (optionally through a grouping table such as
  body segments) and the foreground IoU, per sample, in percent.
"""

from __future__ import annotations

import torch

MM = 1000.0

# COCO's per-keypoint sigmas (17 keypoints: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
COCO_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
    0.089, 0.089,
)  # fmt: skip


def _mean_distance(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    distance = (a - b).norm(dim=-1)
    if mask is None:
        return distance.mean(-1) * MM
    weights = mask.to(distance.dtype)
    return (distance * weights).sum(-1) / weights.sum(-1) * MM  # no labelled joint -> NaN


def align_translation_scale(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) pred moved and scaled (no rotation) to best match gt in least squares."""
    pc = pred - pred.mean(1, keepdim=True)
    gc = gt - gt.mean(1, keepdim=True)
    s = (pc * gc).sum((1, 2)) / (pc * pc).sum((1, 2)).clamp_min(1e-12)
    return s[:, None, None] * pc + gt.mean(1, keepdim=True)


def similarity_procrustes(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, N, 3) pred aligned to gt by the least-squares similarity transform (Umeyama; no reflections),
    fitted on the points where the (B, N) `mask` is true (all points by default)."""
    weights = torch.ones(pred.shape[:2], dtype=pred.dtype, device=pred.device) if mask is None else mask
    weights = weights.to(pred.dtype)[..., None]  # (B, N, 1)
    total = weights.sum(1, keepdim=True).clamp_min(1e-12)
    mp, mg = (weights * pred).sum(1, keepdim=True) / total, (weights * gt).sum(1, keepdim=True) / total
    pc, gc = pred - mp, gt - mg
    cov = (weights * gc).transpose(1, 2) @ pc  # (B, 3, 3) sum of w g p^T
    u, sig, vt = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(u @ vt))
    fix = torch.ones_like(sig)
    fix[:, -1] = d
    rot = u @ torch.diag_embed(fix) @ vt  # maps centred pred onto centred gt
    scale = (sig * fix).sum(-1) / (weights * pc * pc).sum((1, 2)).clamp_min(1e-12)
    return scale[:, None, None] * pc @ rot.transpose(1, 2) + mg


def mpjpe(
    pred: torch.Tensor, gt: torch.Tensor, root: int | None = None, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, N, 3) x2 -> (B,) mm; with `root`, both skeletons are first made relative to that joint; with a
    (B, N) `mask`, the mean is over the labelled joints."""
    if root is not None:
        pred = pred - pred[:, root : root + 1]
        gt = gt - gt[:, root : root + 1]
    return _mean_distance(pred, gt, mask)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N, 3) x2 -> (B,) mm after similarity Procrustes (fitted and scored on the masked joints)."""
    return _mean_distance(similarity_procrustes(pred, gt, mask), gt, mask)


def pve(
    pred: torch.Tensor,
    gt: torch.Tensor,
    pred_root: torch.Tensor | None = None,
    gt_root: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, V, 3) x2 -> (B,) mean per-vertex error in mm; roots (B, 3) (e.g. pelvis) subtracted if given."""
    if pred_root is not None:
        pred = pred - pred_root[:, None]
    if gt_root is not None:
        gt = gt - gt_root[:, None]
    return _mean_distance(pred, gt)


def pve_scale_aligned(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) x2 -> (B,) mm after aligning scale and translation (not the paper's PVE-S)."""
    return _mean_distance(align_translation_scale(pred, gt), gt)


def pve_procrustes(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) x2 -> (B,) mm after similarity Procrustes (not the paper's PVE-P)."""
    return _mean_distance(similarity_procrustes(pred, gt), gt)


def oks(
    pred: torch.Tensor, gt: torch.Tensor, area: torch.Tensor, sigmas: tuple[float, ...] = COCO_SIGMAS
) -> torch.Tensor:
    """COCO object keypoint similarity of matched pairs.

    Args:
        pred: (N, K, 2) pixels; gt: (N, K, 3) pixels + visibility (> 0 = labelled);
        area: (N,) object area in px^2.
    Returns:
        (N,) OKS in [0, 1]; 0 for a person with no labelled keypoint.
    """
    var = (2 * torch.tensor(sigmas, dtype=pred.dtype, device=pred.device)) ** 2
    d2 = ((pred - gt[..., :2]) ** 2).sum(-1)
    e = d2 / var / (area[:, None] + torch.finfo(pred.dtype).eps) / 2
    vis = (gt[..., 2] > 0).to(pred.dtype)
    return (torch.exp(-e) * vis).sum(-1) / vis.sum(-1).clamp_min(1)


def oks_matrix(
    pred: torch.Tensor, gt: torch.Tensor, area: torch.Tensor, sigmas: tuple[float, ...] = COCO_SIGMAS
) -> torch.Tensor:
    """(P, K, 2) predictions vs (G, K, 3) ground truths with areas (G,) -> (P, G) OKS for AP matching."""
    p, g = pred.shape[0], gt.shape[0]
    pp = pred[:, None].expand(p, g, *pred.shape[1:]).reshape(p * g, *pred.shape[1:])
    gg = gt[None].expand(p, g, *gt.shape[1:]).reshape(p * g, *gt.shape[1:])
    return oks(pp, gg, area[None].expand(p, g).reshape(-1), sigmas).reshape(p, g)


def part_accuracy(
    pred_index: torch.Tensor, gt_index: torch.Tensor, groups: tuple[int, ...] | None = None
) -> torch.Tensor:
    """(B, H, W) predicted and ground-truth part indices (0 = background) -> (B,) percent of the ground truth's
    foreground pixels whose predicted part is right; NaN for a sample with no foreground.

    groups: part -> group table (e.g. constants.PART_TO_SEGMENT); parts in one group count as the same, and
    a pixel predicted as background is wrong whatever its group."""
    if groups is not None:
        table = torch.tensor(groups, device=pred_index.device)
        pred_index, gt_index = table[pred_index], table[gt_index]
    foreground = gt_index > 0
    correct = ((pred_index == gt_index) & foreground).flatten(1).sum(1)
    return 100.0 * correct / foreground.flatten(1).sum(1)  # 0 / 0 -> NaN


def foreground_iou(pred_index: torch.Tensor, gt_index: torch.Tensor) -> torch.Tensor:
    """(B, H, W) part indices x2 -> (B,) percent intersection over union of the person masks (index > 0)."""
    pred, gt = pred_index > 0, gt_index > 0
    return 100.0 * (pred & gt).flatten(1).sum(1) / (pred | gt).flatten(1).sum(1)
