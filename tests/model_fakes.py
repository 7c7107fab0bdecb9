"""A tiny random SMPL-format body model and synthetic samples for the model tests.

It follows pipeline.body's BodyModel API (body(betas=, pose=) -> .vertices/.joints, regress(v, "spin24")) so
the network's tests do not depend on the real asset; skinning is smplx.lbs, as in the real model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from smplx.lbs import lbs
from torch import nn

from model.rotations import axis_angle_to_matrix
from pipeline.body.constants import SMPL_PARENTS
from pipeline.render.iuv import iuv_to_onehot


@dataclass
class FakeOutput:
    vertices: torch.Tensor
    joints: torch.Tensor


class FakeBody(nn.Module):
    """Random SMPL-format body: V vertices around a stick figure, 10 shape directions, 24-joint skinning."""

    def __init__(self, num_vertices: int = 96, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        j = len(SMPL_PARENTS)
        offsets = torch.randn(j, 3, generator=g) * 0.15
        joints = torch.zeros(j, 3)
        for i, p in enumerate(SMPL_PARENTS):
            joints[i] = offsets[i] if p < 0 else joints[p] + offsets[i]
        owner = torch.arange(num_vertices) % j
        v = joints[owner] + torch.randn(num_vertices, 3, generator=g) * 0.03
        weights = torch.nn.functional.one_hot(owner, j).float() * 0.8 + 0.2 / j
        reg = torch.nn.functional.one_hot(owner, j).float().T
        self.register_buffer("v_template", v)
        self.register_buffer("shapedirs", torch.randn(num_vertices, 3, 10, generator=g) * 0.01)
        self.register_buffer("posedirs", torch.randn((j - 1) * 9, num_vertices * 3, generator=g) * 1e-3)
        self.register_buffer("j_regressor", reg / reg.sum(1, keepdim=True))
        self.register_buffer("weights", weights / weights.sum(1, keepdim=True))
        self.register_buffer("parents", torch.tensor(SMPL_PARENTS))
        self.register_buffer("spin24", torch.softmax(torch.randn(24, num_vertices, generator=g) * 3, dim=1))
        self.num_vertices = num_vertices

    def forward(self, betas: torch.Tensor, pose: torch.Tensor) -> FakeOutput:
        if pose.dim() == 2:
            pose = axis_angle_to_matrix(pose.reshape(pose.shape[0], -1, 3))
        v, jt = lbs(
            betas, pose, self.v_template, self.shapedirs, self.posedirs, self.j_regressor, self.parents,
            self.weights, pose2rot=False,
        )  # fmt: skip
        return FakeOutput(v, jt)

    regressor_names = ("smpl24", "spin24")

    def regress(self, vertices: torch.Tensor, name: str) -> torch.Tensor:
        assert name == "spin24"
        return torch.einsum("jv,bvc->bjc", self.spin24, vertices)


def synthetic_iuv(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """(B, 75, size, size) one-hot IUV maps (pipeline.render.iuv layout): a person-like ellipse cut into a grid
    of parts with smooth U, V."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    iuv = torch.zeros(batch, size, size, 3)
    for b in range(batch):
        cx, cy = (torch.rand(2, generator=g) - 0.5) * 0.4
        fg = ((xs - cx) / 0.45) ** 2 + ((ys - cy) / 0.8) ** 2 < 1
        parts = (((ys - cy) * 3 + 3).clamp(0, 5).long() * 4 + ((xs - cx) * 3 + 2).clamp(0, 3).long()) % 24 + 1
        iuv[b, ..., 0] = torch.where(fg, parts, torch.zeros_like(parts)).float()
        iuv[b, ..., 1] = (xs + 1) / 2
        iuv[b, ..., 2] = (ys + 1) / 2
    return iuv_to_onehot(iuv)


def synthetic_batch(
    batch: int, image_size: int, seed: int = 0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Images and every kind of target for `batch` samples."""
    g = torch.Generator().manual_seed(seed)
    iuv = synthetic_iuv(batch, image_size // 4, seed)
    image = torch.nn.functional.interpolate(iuv[:, :3] + iuv[:, 25:28], size=image_size) + 0.1 * torch.randn(
        batch, 3, image_size, image_size, generator=g
    )
    pose = torch.randn(batch, 72, generator=g) * 0.2
    pose[:, 0] += torch.pi
    targets = {
        "iuv": iuv,
        "has_iuv": torch.ones(batch, dtype=torch.bool),
        "pose": pose,
        "betas": torch.randn(batch, 10, generator=g) * 0.5,
        "has_smpl": torch.ones(batch, dtype=torch.bool),
        "joints2d_smpl": torch.cat(
            [torch.rand(batch, 24, 2, generator=g) * 1.2 - 0.6, torch.ones(batch, 24, 1)], -1
        ),
        "kp3d": torch.cat([torch.randn(batch, 24, 3, generator=g) * 0.3, torch.ones(batch, 24, 1)], -1),
        "has_kp3d": torch.ones(batch, dtype=torch.bool),
        "kp2d": torch.cat([torch.rand(batch, 24, 2, generator=g) * 1.2 - 0.6, torch.ones(batch, 24, 1)], -1),
    }
    return image, targets


def consistent_batch(body: FakeBody, batch: int, image_size: int, seed: int = 0):
    """synthetic_batch whose 3D / 2D keypoints are those of the body posed with its pose and betas."""
    from model.camera import project

    image, targets = synthetic_batch(batch, image_size, seed)
    with torch.no_grad():
        posed = body(targets["betas"], targets["pose"])
        kp3d = body.regress(posed.vertices, "spin24")
        cam = torch.tensor([0.9, 0.0, 0.0]).expand(batch, 3)
        kp2d = project(kp3d, cam)
    ones = torch.ones(batch, 24, 1)
    targets["kp3d"] = torch.cat([kp3d, ones], -1)
    targets["kp2d"] = torch.cat([kp2d, ones], -1)
    return image, targets
