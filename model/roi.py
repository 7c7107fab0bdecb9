"""Joint-centric RoI placement (Section 4.2) and pooling through pipeline.render.partial.

Coordinates: joints in [-1, 1] (x right, y down) of the IUV map; a RoI's scale is the fraction of the map side
it spans (pipeline.render.partial's convention). Two scale rules:
- "bone" (reference code): s_k = alpha_k * L_k + delta_k, L_k the longer of joint k's 2D bones to its parent
  and children, in normalised units; the root uses half the side of the joints' bounding box;
- "box" (paper Eq. 2): s_k = alpha_k * max(w, h) + delta_k, (w, h) the foreground box of the predicted index
  map in normalised units. The published alpha/delta (ROI_ALPHA/ROI_DELTA) belong to the bone rule; the box
  rule starts every joint at RoIConfig.box_alpha/box_delta.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pipeline.body.constants import ROI_ALPHA, ROI_DELTA, SMPL_PARENTS


def bone_lengths(joints: torch.Tensor, parents: Sequence[int] = SMPL_PARENTS) -> torch.Tensor:
    """(B, J, 2) joints -> (B, J) longer of the bones to parent and children; root: half the joint box."""
    b, j, _ = joints.shape
    # Pairs (joint, neighbour) over all bones in both directions, then a scatter-max per joint.
    src = [i for i, p in enumerate(parents) if p >= 0]
    dst = [parents[i] for i in src]
    a = torch.tensor(src + dst, device=joints.device)
    c = torch.tensor(dst + src, device=joints.device)
    lengths = (joints[:, a] - joints[:, c]).norm(dim=-1)  # (B, 2 * bones)
    out = torch.zeros(b, j, dtype=joints.dtype, device=joints.device)
    out = out.scatter_reduce(1, a.expand(b, -1), lengths, reduce="amax", include_self=True)
    side = (joints.amax(1) - joints.amin(1)).amax(-1)  # (B,)
    is_root = torch.tensor([p < 0 for p in parents], device=joints.device)
    return torch.where(is_root, side[:, None] / 2, out)


def foreground_box_side(index_probs: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """(B, 25, H, W) part probabilities -> (B,) max(w, h) of the foreground box in normalised units [0, 2].

    Foreground = background probability below `threshold`; an empty map gives 2 (the whole map).
    """
    _, _, h, w = index_probs.shape
    fg = index_probs[:, 0] < threshold  # (B, H, W)
    xs = (torch.arange(w, device=fg.device) + 0.5) / w * 2 - 1
    ys = (torch.arange(h, device=fg.device) + 0.5) / h * 2 - 1
    cols, rows = fg.any(1), fg.any(2)  # (B, W), (B, H)
    big = torch.tensor(4.0, device=fg.device)
    x0 = torch.where(cols, xs, big).amin(1) - 1.0 / w
    x1 = torch.where(cols, xs, -big).amax(1) + 1.0 / w
    y0 = torch.where(rows, ys, big).amin(1) - 1.0 / h
    y1 = torch.where(rows, ys, -big).amax(1) + 1.0 / h
    side = torch.maximum(x1 - x0, y1 - y0)
    return torch.where(cols.any(1), side, torch.full_like(side, 2.0)).to(index_probs.dtype)


class JointRoI(nn.Module):
    """Per-joint RoI centres and scales from predicted 2D joints (and index map, for the box rule).

    forward(joints (B,J,2), index_probs (B,25,H,W) or None) -> (centers (B,J,2), scales (B,J)); in training
    mode centres and scales are jittered (RoIConfig.jitter_position/jitter_scale).
    """

    def __init__(self, cfg, parents: Sequence[int] = SMPL_PARENTS):
        super().__init__()
        self.cfg = cfg
        self.parents = tuple(parents)
        j = len(parents)
        if cfg.scale_mode == "bone":
            alpha, delta = torch.tensor(ROI_ALPHA), torch.tensor(ROI_DELTA)
        elif cfg.scale_mode == "box":
            alpha, delta = torch.full((j,), cfg.box_alpha), torch.full((j,), cfg.box_delta)
        else:
            raise ValueError(f"unknown RoI scale mode {cfg.scale_mode!r}")
        if cfg.alpha_mode == "equal":
            alpha, delta = alpha.mean().expand(j).clone(), delta.mean().expand(j).clone()
        if cfg.learnable:
            self.alpha, self.delta = nn.Parameter(alpha), nn.Parameter(delta)
        else:
            self.register_buffer("alpha", alpha)
            self.register_buffer("delta", delta)

    def forward(
        self, joints: torch.Tensor, index_probs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cfg.detach_centers:
            joints = joints.detach()
        if self.cfg.scale_mode == "bone":
            size = bone_lengths(joints, self.parents)
        else:
            if index_probs is None:
                raise ValueError("RoI scale_mode 'box' needs the predicted index map")
            size = foreground_box_side(index_probs.detach())[:, None].expand(-1, joints.shape[1])
        scales = (self.alpha * size + self.delta).clamp_min(self.cfg.min_scale)
        centers = joints
        if self.training:
            jp, js = self.cfg.jitter_position, self.cfg.jitter_scale
            if jp > 0:
                centers = centers + (torch.rand_like(centers) * 2 - 1) * jp * scales.detach()[..., None]
            if js > 0:
                scales = scales * (1 + (torch.rand_like(scales) * 2 - 1) * js)
        return centers, scales
