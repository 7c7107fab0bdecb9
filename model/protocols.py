"""The evaluation protocols of the literature: which joints, which ground truth, which root, per dataset.

As SPIN, DaNet and PyMAF evaluate:

* Human3.6M (protocol 1: all cameras, ``valid_p1``; protocol 2: the frontal camera, ``valid_p2``): the 14
  LSP joints; ground truth from the 3D keypoints ``S`` (SPIN-24 -> J14), relative to the pelvis;
  prediction from the mesh through J_regressor_h36m (H36M-17 -> J14), relative to its row 0 (the pelvis).
* MPI-INF-3DHP: the same with all 17 joints (J14 + pelvis, spine, head).
* 3DPW: the 14 joints regressed from the ground-truth mesh of the subject's gendered SMPL, as from the
  prediction's mesh.
* any other dataset: the mesh when the sample has an SMPL fit, else its 3D keypoints; 14 joints.

Without an H36M regressor the prediction's joints come from its SPIN-24 keypoints (SPIN-24 -> J14, root
= SPIN-24's pelvis): fine for comparing runs, not for comparing with papers (summary says so).
All joints in metres, (B, J, 3); tables in pipeline.body.constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from pipeline.body.constants import (
    H36M17_PELVIS,
    H36M17_TO_J17,
    SPIN24_HIPS,
    SPIN24_PELVIS,
    SPIN24_TO_J17,
)

GroundTruth = Literal["keypoints", "mesh", "auto"]


@dataclass(frozen=True)
class Protocol:
    """name: how the summary calls it ("h36m-p2", "3dpw", ...); num_joints: 14 (LSP) or 17 (+ pelvis, spine,
    head); ground_truth: "keypoints" (the sample's 3D keypoints S), "mesh" (its SMPL fit, gendered) or "auto"
    (mesh when the sample has an SMPL fit, else keypoints)."""

    name: str
    num_joints: int = 14
    ground_truth: GroundTruth = "auto"


DEFAULT_PROTOCOL = Protocol("default")


def protocol_for(dataset: str, split: str) -> Protocol:
    """The protocol the literature uses for `dataset`'s `split` (see the module docstring)."""
    name = dataset.lower().replace("-", "_")
    if name.startswith("h36m") or name == "human36m":
        number = "p2" if "p2" in split else "p1" if "p1" in split else ""
        return Protocol(f"h36m-{number}" if number else "h36m", 14, "keypoints")
    if name in ("mpi_inf_3dhp", "mpii3d", "3dhp"):
        return Protocol("mpi-inf-3dhp", 17, "keypoints")
    if name in ("3dpw", "pw3d"):
        return Protocol("3dpw", 14, "mesh")
    return Protocol(name, 14, "auto")


def regressed_joints(body, vertices: torch.Tensor, num_joints: int = 14) -> torch.Tensor:
    """(B, V, 3) mesh -> (B, num_joints, 3) root-relative protocol joints: through the body's 'h36m17'
    regressor (root: its pelvis row) when it has one, else its 'spin24' keypoints (root: their pelvis)."""
    if "h36m17" in body.regressor_names:
        joints = body.regress(vertices, "h36m17")
        return joints[:, list(H36M17_TO_J17[:num_joints])] - joints[:, H36M17_PELVIS : H36M17_PELVIS + 1]
    joints = body.regress(vertices, "spin24")
    return joints[:, list(SPIN24_TO_J17[:num_joints])] - joints[:, SPIN24_PELVIS : SPIN24_PELVIS + 1]


def keypoint_joints(keypoints: torch.Tensor, num_joints: int = 14) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 24, 4) SPIN-24 3D keypoints (x, y, z, confidence) -> ((B, J, 3) root-relative joints, (B, J)
    visibility). Root: the pelvis keypoint when labelled, else the midpoint of the hips (SPIN's h36m S is
    already pelvis-centred, so either way it is unchanged)."""
    points, confidence = keypoints[..., :3], keypoints[..., 3]
    pelvis = points[:, SPIN24_PELVIS]
    hips = points[:, list(SPIN24_HIPS)].mean(1)
    has_pelvis = (confidence[:, SPIN24_PELVIS] > 0)[:, None]
    root = torch.where(has_pelvis, pelvis, hips)
    rows = list(SPIN24_TO_J17[:num_joints])
    return points[:, rows] - root[:, None], confidence[:, rows] > 0


def compares_with_papers(body, protocol: Protocol) -> bool:
    """Whether the figures are the literature's: an SMPL-topology body (6,890 vertices; the open body's own
    H36M regressor is not the field's file) whose joints come through J_regressor_h36m."""
    from pipeline.body.keypoints import SMPL_NUM_VERTICES

    smpl = body.num_vertices == SMPL_NUM_VERTICES
    return smpl and "h36m17" in body.regressor_names and protocol.num_joints in (14, 17)
