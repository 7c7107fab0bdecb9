"""Losses of DensePose-COCO's sparse labels: part index and U/V at annotated points, coarse masks per pixel.

The authors' trainer (HongwenZhang/DaNet-DensePose2SMPL, ``IUV_Estimator.dp_uvia_losses``) samples the
predicted maps at the points with ``grid_sample`` (bilinear) and adds, for the samples that carry points:

- ``dp_part_index``: cross-entropy of the sampled 25-way index logits against the point's part I
  (weight ``PART_WEIGHTS`` 0.3);
- ``dp_uv``: smooth-L1 (beta 1) of the sampled U and V of the point's part channel, U and V added
  (``POINT_REGRESSION_WEIGHTS`` 0.5);
- ``dp_coarse_index``: cross-entropy of the 15-way coarse logits against the coarse mask at every pixel of the
  map, background included (``INDEX_WEIGHTS`` 2.0).

Targets (model.training.targets.point_targets): ``dp_xy`` (B, N, 2) points in [-1, 1] map coordinates
(align_corners=False: -1 is the left edge of the first pixel), ``dp_part`` (B, N) int64 1..24, ``dp_uv``
(B, N, 2), ``dp_valid`` (B, N) bool (padding False); ``dpmask`` (B, h, w) int64 0..14 at the predicted maps'
size with ``has_dpmask`` (B,). A term is computed only when some sample has its labels.

Reductions follow ``LossConfig.uv_form`` like the dense terms: ``smooth_l1_sum`` is the authors' (the U/V
smooth-L1 summed over every point of the batch, their ``net_utils.smooth_l1_loss`` dividing by a leading
dimension of 1); ``l1_mean`` is ours (L1 averaged over each sample's points, then over samples with points).
Both average the point cross-entropy over the batch's real points (the authors' 196 fixed slots also count
their zero padding as background points at the crop's corner; ours leave padding out) and the mask
cross-entropy over the pixels of the samples with masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.losses import masked_mean, smooth_l1


def sample_at_points(maps: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) maps, (B, N, 2) points in [-1, 1] -> (B, C, N) bilinear samples (zeros outside)."""
    return F.grid_sample(maps, xy[:, None].to(maps.dtype), mode="bilinear", align_corners=False)[:, :, 0]


def point_index_ce(index_logits: torch.Tensor, xy: torch.Tensor, part: torch.Tensor, valid: torch.Tensor):
    """Cross-entropy of the index logits sampled at the points, averaged over the valid points: scalar."""
    logits = sample_at_points(index_logits, xy)  # (B, 25, N)
    ce = F.cross_entropy(logits, part.clamp_min(0), reduction="none")  # (B, N)
    w = valid.to(ce.dtype)
    return (ce * w).sum() / w.sum().clamp_min(1.0)


def point_uv_error(
    u: torch.Tensor, v: torch.Tensor, xy: torch.Tensor, part: torch.Tensor, uv: torch.Tensor, form: str
) -> torch.Tensor:
    """(B, N) error of predicted U and V at the points, on each point's own part channel, U and V added:
    smooth-L1 for ``form="smooth_l1_sum"``, L1 otherwise."""
    index = part.clamp_min(0)[:, None]  # (B, 1, N)
    pu = sample_at_points(u, xy).gather(1, index)[:, 0]
    pv = sample_at_points(v, xy).gather(1, index)[:, 0]
    diff = torch.stack([pu - uv[..., 0], pv - uv[..., 1]], -1)
    err = smooth_l1(diff) if form == "smooth_l1_sum" else diff.abs()
    return err.sum(-1)


def point_losses(pred: dict, targets: dict, loss) -> dict[str, torch.Tensor]:
    """The point and coarse-mask terms (unweighted) for the samples that carry them; {} when none does.

    `loss`: the LossConfig (uv_form picks the reduction, see the module docstring)."""
    out: dict[str, torch.Tensor] = {}
    valid = targets.get("dp_valid")
    if valid is not None and bool(valid.any()):
        xy, part = targets["dp_xy"], targets["dp_part"]
        out["dp_part_index"] = point_index_ce(pred["index_logits"], xy, part, valid)
        err = point_uv_error(pred["u"], pred["v"], xy, part, targets["dp_uv"], loss.uv_form)
        w = valid.to(err.dtype)
        if loss.uv_form == "smooth_l1_sum":
            out["dp_uv"] = (err * w).sum()
        else:
            per_sample = (err * w).sum(1) / w.sum(1).clamp_min(1.0)
            out["dp_uv"] = masked_mean(per_sample, valid.any(1))
    has_mask = targets.get("has_dpmask")
    if has_mask is not None and bool(has_mask.any()):
        ce = F.cross_entropy(pred["coarse_logits"], targets["dpmask"], reduction="none").flatten(1).mean(1)
        out["dp_coarse_index"] = masked_mean(ce, has_mask)
    return out
