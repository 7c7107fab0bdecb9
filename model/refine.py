"""Aggregated refinement (Section 4.3): rotation features -> joint positions -> refined -> rotations.

Three graphs over the 24 SMPL joints, all derived from the parent list:
- rotation->position: a joint's position depends on its own and its ancestors' rotations;
- refinement: each joint sees its 1- and 2-hop skeleton neighbours, weighted by a learnable edge mask
  (A = I + mask * ReLU(E)), with a residual connection;
- position->rotation: a joint's rotation is read from its own, its parent's and its children's positions.
A graph convolution is A_norm X W + b with A_norm = A with rows summing to 1, followed by BatchNorm + ReLU.

RefineConfig switches the authors' choices on (HongwenZhang/DaNet-3DHumanReconstruction, the "gcn" strategy):
symmetric normalisation D^-1/2 A D^-1/2 of the refinement graph (D from column sums), BatchNorm over the 24
joints, one edge mask shared by the refinement layers, BatchNorm + ReLU after its last layer too, no self-loop
in rotation->position (the root's position feature is then the bias alone) and the neck-shoulder edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pipeline.body.constants import SMPL_PARENTS


def ancestors_adjacency(parents: Sequence[int] = SMPL_PARENTS) -> torch.Tensor:
    """(J, J) A[i, j] = 1 if j == i or j is an ancestor of i."""
    n = len(parents)
    a = torch.eye(n)
    for i in range(n):
        j = parents[i]
        while j >= 0:
            a[i, j] = 1.0
            j = parents[j]
    return a


def skeleton_adjacency(parents: Sequence[int] = SMPL_PARENTS) -> torch.Tensor:
    """(J, J) symmetric 0/1 adjacency of the kinematic tree (no self loops)."""
    n = len(parents)
    a = torch.zeros(n, n)
    for i, p in enumerate(parents):
        if p >= 0:
            a[i, p] = a[p, i] = 1.0
    return a


def neighbour_adjacency(parents: Sequence[int] = SMPL_PARENTS, hops: int = 2) -> torch.Tensor:
    """(J, J) 1 where j is within `hops` tree edges of i (j != i)."""
    e = skeleton_adjacency(parents)
    reach = torch.eye(len(parents))
    power = torch.eye(len(parents))
    for _ in range(hops):
        power = (power @ e).clamp(max=1.0)
        reach = (reach + power).clamp(max=1.0)
    return reach - torch.eye(len(parents))


NECK_SHOULDER_EDGES: tuple[tuple[int, int], ...] = ((12, 16), (12, 17))  # in the authors' refinement graph


def refinement_adjacency(parents: Sequence[int] = SMPL_PARENTS, neck_shoulder: bool = False) -> torch.Tensor:
    """(J, J) the refinement graph with self loops: 1- and 2-hop tree neighbours, optionally the neck-shoulder
    edges (which add no 2-hop neighbours of their own, as in the authors' edge list)."""
    a = neighbour_adjacency(parents, 2) + torch.eye(len(parents))
    if neck_shoulder:
        for i, j in NECK_SHOULDER_EDGES:
            a[i, j] = a[j, i] = 1.0
    return a


def parent_child_adjacency(parents: Sequence[int] = SMPL_PARENTS) -> torch.Tensor:
    """(J, J) A[i, j] = 1 if j is i, its parent or one of its children."""
    return skeleton_adjacency(parents) + torch.eye(len(parents))


def normalize_rows(a: torch.Tensor) -> torch.Tensor:
    """Rows scaled to sum to 1."""
    return a / a.sum(-1, keepdim=True).clamp_min(1e-12)


def normalize_symmetric(a: torch.Tensor) -> torch.Tensor:
    """D^-1/2 A D^-1/2 with D the column sums (a zero column keeps a zero scale), the authors' convention."""
    d = a.sum(0)
    scale = torch.where(d > 0, d.clamp_min(1e-12).rsqrt(), torch.zeros_like(d))
    return scale[:, None] * a * scale[None, :]


NORMALIZE = {"row": normalize_rows, "symmetric": normalize_symmetric}


class GraphConv(nn.Module):
    """y = A_norm x W + b over joints, x (B, J, Cin) -> (B, J, Cout); optionally BatchNorm + ReLU.

    With `learnable_mask`, A = I + mask * ReLU(E), E a trainable (J, J) matrix initialised to 1 on
    `adjacency`'s off-diagonal support and used only there; otherwise A = `adjacency` (fixed). forward's
    `edges` supplies E from outside (a mask shared by several layers). `norm`: "row" or "symmetric";
    `batchnorm`: over the "channels" (ours) or the J "joints" (the authors').
    """

    def __init__(
        self,
        adjacency: torch.Tensor,
        cin: int,
        cout: int,
        learnable_mask=False,
        norm_act=True,
        norm: str = "row",
        batchnorm: str = "channels",
    ):
        super().__init__()
        self.register_buffer("adjacency", adjacency.clone(), persistent=False)
        self.edges = nn.Parameter(adjacency.clone()) if learnable_mask else None
        self.linear = nn.Linear(cin, cout)
        if batchnorm not in ("channels", "joints"):
            raise ValueError(f"unknown graph batchnorm {batchnorm!r}")
        self.bn_over_joints = batchnorm == "joints"
        self.bn = (nn.BatchNorm1d(len(adjacency) if self.bn_over_joints else cout)) if norm_act else None
        self.normalize = NORMALIZE[norm]

    def matrix(self, edges: torch.Tensor | None = None) -> torch.Tensor:
        """The normalised (J, J) aggregation matrix in use."""
        edges = self.edges if edges is None else edges
        if edges is None:
            return self.normalize(self.adjacency)
        eye = torch.eye(len(self.adjacency), device=self.adjacency.device, dtype=edges.dtype)
        mask = self.adjacency * (1 - eye)
        return self.normalize(eye + mask * torch.relu(edges))

    def forward(self, x: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
        y = self.linear(torch.einsum("ij,bjc->bic", self.matrix(edges).to(x.dtype), x))
        if self.bn is not None:
            y = self.bn(y) if self.bn_over_joints else self.bn(y.transpose(1, 2)).transpose(1, 2)
            y = torch.relu(y)
        return y


class RefinementGraph(nn.Module):
    """Residual stack of graph convs over 1- and 2-hop neighbours: C -> hidden... -> C, y = x + f(x).

    With `cfg.shared_mask` (and learnable edges) one `edges` matrix serves every layer (the authors'
    edge_importance); otherwise each layer has its own. `cfg.last_norm_act` adds BatchNorm + ReLU after the
    last layer too."""

    def __init__(
        self, channels: int, hidden: Sequence[int], learnable_edges: bool, parents=SMPL_PARENTS, cfg=None
    ):
        super().__init__()
        shared = bool(cfg and cfg.shared_mask and learnable_edges)
        adjacency = refinement_adjacency(parents, bool(cfg and cfg.neck_shoulder_edges))
        sizes = [channels, *hidden, channels]
        last_norm_act = bool(cfg and cfg.last_norm_act)
        norm, batchnorm = (cfg.norm, cfg.batchnorm) if cfg else ("row", "channels")
        self.layers = nn.ModuleList(
            GraphConv(
                adjacency,
                a,
                b,
                learnable_edges and not shared,
                i < len(sizes) - 2 or last_norm_act,
                norm,
                batchnorm,
            )
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
        )
        self.edges = nn.Parameter(adjacency.clone()) if shared else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for layer in self.layers:
            y = layer(y, self.edges)
        return x + y


class PerJointLinear(nn.Module):
    """An independent linear map per joint: (B, J, Cin) -> (B, J, Cout)."""

    def __init__(self, joints: int, cin: int, cout: int, init_scale: float = 1.0):
        super().__init__()
        bound = init_scale / cin**0.5
        self.weight = nn.Parameter(torch.empty(joints, cin, cout).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(joints, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bjc,jcd->bjd", x, self.weight) + self.bias


class AggregatedRefinement(nn.Module):
    """Rotation features X (B, J, C) -> dict of features and per-joint predictions.

    variant:
      "none": no refinement (D-Net); rotations from X.
      "direct": X^ = RefinementGraph(X); rotations from X (aux) and X^.
      "position_implicit": Y = G_rp(X), Y^ = RefinementGraph(Y), X^ = G_pr(Y^); positions unsupervised.
      "position_aided": as above with positions predicted from Y and Y^ for supervision.
    Returns {"rotations": [(B,J,R) per stage, last = final], "positions": [(B,J,3) from Y, Y^] or []}.
    """

    def __init__(self, cfg, channels: int, rot_dim: int, parents: Sequence[int] = SMPL_PARENTS):
        super().__init__()
        self.variant = cfg.variant
        j = len(parents)
        self.rot_heads = nn.ModuleList([PerJointLinear(j, channels, rot_dim, 0.01)])
        if self.variant == "none":
            return
        self.rot_heads.append(PerJointLinear(j, channels, rot_dim, 0.01))
        if self.variant == "direct":
            self.refine = RefinementGraph(channels, cfg.hidden, cfg.learnable_edges, parents, cfg)
            return
        to_pos = ancestors_adjacency(parents)
        if not cfg.rot_to_pos_self_loop:
            to_pos = to_pos - torch.eye(j)
        bn = cfg.batchnorm
        self.rot_to_pos = GraphConv(to_pos, channels, channels, batchnorm=bn)
        self.refine = RefinementGraph(channels, cfg.hidden, cfg.learnable_edges, parents, cfg)
        self.pos_to_rot = GraphConv(parent_child_adjacency(parents), channels, channels, batchnorm=bn)
        if self.variant == "position_aided":
            self.pos_heads = nn.ModuleList([PerJointLinear(j, channels, 3) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        rotations = [self.rot_heads[0](x)]
        positions: list[torch.Tensor] = []
        if self.variant == "direct":
            rotations.append(self.rot_heads[1](self.refine(x)))
        elif self.variant in ("position_implicit", "position_aided"):
            y = self.rot_to_pos(x)
            y_hat = self.refine(y)
            x_hat = self.pos_to_rot(y_hat)
            rotations.append(self.rot_heads[1](x_hat))
            if self.variant == "position_aided":
                positions = [self.pos_heads[0](y), self.pos_heads[1](y_hat)]
        return {"rotations": rotations, "positions": positions}
