"""Joint-centric RoI placement (Section 4.2) and pooling through pipeline.render.partial.

Coordinates: joints in [-1, 1] (x right, y down) of the IUV map; a RoI's scale is the fraction of the map side
it spans (pipeline.render.partial's convention). Two scale rules:
- "bone" (reference code): s_k = alpha_k * L_k + delta_k, L_k the longer of joint k's 2D bones to its parent
  and children, in normalised units; the root uses half the side of the joints' bounding box;
- "box" (paper Eq. 2): s_k = alpha_k * max(w, h) + delta_k, (w, h) the foreground box of the predicted index
  map in normalised units. The published alpha/delta (ROI_ALPHA/ROI_DELTA) belong to the bone rule; the box
  rule starts every joint at RoIConfig.box_alpha/box_delta.
The authors' variant of the bone rule (RoIConfig.bone_children="one", hidden_score, jitter_mode="reference")
measures each joint against its parent and one designated child (REFERENCE_CHILD), and gives a non-root joint
whose parts are not seen at its centre (hard-index score < hidden_score) hidden_box x half the joint box.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.body.constants import ROI_ALPHA, ROI_DELTA, SMPL_PARENTS

# The authors' tables (DaNet-3DHumanReconstruction utils/smpl_utlis.py, SMPL joint order), facts:
# the one child each joint's RoI is measured against ("smpl_children"[1]; a leaf names itself: length 0) ...
REFERENCE_CHILD: tuple[int, ...] = (
    3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 10, 11, 15, 16, 17, 15, 18, 19, 20, 21, 22, 23, 22, 23,
)  # fmt: skip
# ... and the DensePose parts (1..24) whose hard index decides whether a joint is visible ("smpl2dp_part").
VISIBILITY_PARTS: tuple[tuple[int, ...], ...] = (
    (1, 2), (8, 10), (7, 9), (1, 2), (8, 10, 12, 14), (7, 9, 11, 13), (1, 2), (12, 14, 5), (11, 13, 6),
    (1, 2), (12, 14, 5), (11, 13, 6), (1, 2, 23, 24), (15, 17), (16, 18), (23, 24), (15, 17), (16, 18),
    (15, 17, 19, 21), (16, 18, 20, 22), (19, 21, 4), (20, 22, 3), (19, 21, 4), (20, 22, 3),
)  # fmt: skip


def bone_lengths(
    joints: torch.Tensor, parents: Sequence[int] = SMPL_PARENTS, children: Sequence[int] | None = None
) -> torch.Tensor:
    """(B, J, 2) joints -> (B, J) longer of the bones to parent and children; root: half the joint box.

    With `children` (one child per joint, e.g. REFERENCE_CHILD), a joint is measured against its parent and
    that child only."""
    b, j, _ = joints.shape
    # Pairs (joint, neighbour), then a scatter-max per joint.
    src = [i for i, p in enumerate(parents) if p >= 0]
    dst = [parents[i] for i in src]
    if children is None:  # every bone in both directions
        src, dst = src + dst, dst + src
    else:  # joint -> parent, joint -> its one child
        src, dst = src + list(range(j)), dst + list(children)
    a = torch.tensor(src, device=joints.device)
    c = torch.tensor(dst, device=joints.device)
    lengths = (joints[:, a] - joints[:, c]).norm(dim=-1)  # (B, pairs)
    out = torch.zeros(b, j, dtype=joints.dtype, device=joints.device)
    out = out.scatter_reduce(1, a.expand(b, -1), lengths, reduce="amax", include_self=True)
    side = (joints.amax(1) - joints.amin(1)).amax(-1)  # (B,)
    is_root = torch.tensor([p < 0 for p in parents], device=joints.device)
    return torch.where(is_root, side[:, None] / 2, out)


def hidden_joints(
    joints: torch.Tensor, index_probs: torch.Tensor, threshold: float, align_corners: bool
) -> torch.Tensor:
    """(B, J) True where joint k's parts (VISIBILITY_PARTS) are not seen at its centre: the max over those
    parts of the hard one-hot index map, bilinearly sampled at the joint, is below `threshold`.

    joints (B, J, 2) in [-1, 1]; index_probs (B, 25, H, W) (only their argmax matters)."""
    k = index_probs.shape[1]
    hard = F.one_hot(index_probs.argmax(1), k).permute(0, 3, 1, 2).to(joints.dtype)  # (B, 25, H, W)
    width = max(len(p) for p in VISIBILITY_PARTS)
    table = torch.tensor(
        [list(p) + [p[0]] * (width - len(p)) for p in VISIBILITY_PARTS], device=joints.device
    )
    score_maps = hard[:, table].amax(2)  # (B, J, H, W)
    samples = F.grid_sample(score_maps, joints[:, :, None, :], align_corners=align_corners)  # (B, J, J, 1)
    score = samples[..., 0].diagonal(dim1=1, dim2=2)  # joint k's map at joint k
    return score < threshold


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
        if self.cfg.jitter_mode == "reference":
            return self._reference(joints, index_probs)
        if self.cfg.scale_mode == "bone":
            size = bone_lengths(joints, self.parents, self._children())
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

    def _children(self) -> Sequence[int] | None:
        return REFERENCE_CHILD if self.cfg.bone_children == "one" else None

    def _reference(
        self, joints: torch.Tensor, index_probs: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The authors' order: jitter the centres (map units), measure bones on the jittered centres, jitter
        the scales, apply the hidden-joint fallback, jitter the scales again."""
        cfg = self.cfg
        jp, js = (cfg.jitter_position, cfg.jitter_scale) if self.training else (0.0, 0.0)
        centers = joints
        if jp > 0:
            centers = centers + jp * (torch.rand_like(centers) - 0.5)
        if cfg.scale_mode == "bone":
            size = bone_lengths(centers, self.parents, self._children())
        else:
            if index_probs is None:
                raise ValueError("RoI scale_mode 'box' needs the predicted index map")
            size = foreground_box_side(index_probs.detach())[:, None].expand(-1, joints.shape[1])
        scales = self.alpha * size + self.delta
        if js > 0:
            scales = scales * (1 + js * (torch.rand_like(scales) - 0.5))
        if cfg.hidden_score > 0:
            if index_probs is None:
                raise ValueError("the hidden-joint RoI fallback needs the predicted index map")
            hidden = hidden_joints(centers, index_probs.detach(), cfg.hidden_score, cfg.align_corners)
            is_root = torch.tensor([p < 0 for p in self.parents], device=hidden.device)
            hidden = hidden & ~is_root
            half_box = (centers.amax(1) - centers.amin(1)).amax(-1) / 2  # (B,)
            scales = torch.where(hidden, cfg.hidden_box * half_box[:, None], scales)
        if js > 0:
            scales = scales * (1 + js * (torch.rand_like(scales) - 0.5))
        return centers, scales.clamp_min(cfg.min_scale)
