"""The literature's evaluation protocols on an SMPL-topology body: ground truth scores 0 under every protocol,
a left/right-swapped prediction does not, and the paper's PVE-S / PVE-P isolate shape and pose."""

from __future__ import annotations

import pytest
import torch

from model.evaluation import Prediction, sample_errors
from model.protocols import Protocol, protocol_for
from pipeline.body import load_body_model
from pipeline.body.constants import H36M17_TO_J17, SPIN24_TO_J17

# SPIN's constants.H36M_TO_J17 and J24_TO_J17 (published tables: the oracle for ours).
SPIN_H36M_TO_J17 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)
SPIN_J24_TO_J17 = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18, 14, 16, 17)
PROTOCOLS = [
    Protocol("h36m-p1", 14, "keypoints"),
    Protocol("h36m-p2", 14, "keypoints"),
    Protocol("mpi-inf-3dhp", 17, "keypoints"),
    Protocol("3dpw", 14, "mesh"),
    Protocol("default", 14, "auto"),
]


def test_tables_are_spins():
    assert H36M17_TO_J17 == SPIN_H36M_TO_J17 and SPIN24_TO_J17 == SPIN_J24_TO_J17


@pytest.fixture(scope="module")
def body(smpl_standin):
    _, files = smpl_standin
    return load_body_model(files["smpl"], h36m_regressor=files["h36m"], extra_regressor=files["extra"])


def _asymmetric_pose(batch: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    pose = 0.25 * torch.randn(batch, 72, generator=generator)
    pose[:, 3 * 1] += 1.0  # left hip raised forward, right hip not: left and right differ
    pose[:, 3 * 16 + 2] -= 0.8  # left shoulder down
    return pose


def _ground_truth(body, pose: torch.Tensor, betas: torch.Tensor) -> dict:
    """A batch as the loader gives it, with 3D keypoints S made as SPIN makes Human3.6M's: the mocap's 17
    joints (here: the mesh's J_regressor_h36m joints, pelvis-centred) written into the 24-joint layout."""
    with torch.no_grad():
        h36m = body.regress(body(betas=betas, pose=pose).vertices, "h36m17")
    h36m = h36m - h36m[:, :1]
    kp3d = torch.zeros(pose.shape[0], 24, 4)
    for h36m_row, spin_row in zip(SPIN_H36M_TO_J17, SPIN_J24_TO_J17, strict=True):
        kp3d[:, spin_row, :3] = h36m[:, h36m_row]
        kp3d[:, spin_row, 3] = 1.0
    ones = torch.ones(pose.shape[0], dtype=torch.bool)
    return {"pose": pose, "betas": betas, "kp3d": kp3d, "has_smpl": ones, "has_kp3d": ones}


def _predict(body, pose: torch.Tensor, betas: torch.Tensor) -> Prediction:
    from pipeline.body.model import pose_to_rotmats

    rotmats = pose_to_rotmats(pose)
    with torch.no_grad():
        return Prediction(betas, rotmats, body(betas=betas, pose=rotmats).vertices)


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
def test_ground_truth_scores_zero_and_a_swapped_prediction_does_not(body, protocol):
    pose, betas = _asymmetric_pose(3, 0), 0.5 * torch.randn(3, 10, generator=torch.Generator().manual_seed(1))
    batch = _ground_truth(body, pose, betas)
    genders = ["n"] * 3
    errors = sample_errors(body, lambda g: body, batch, _predict(body, pose, betas), genders, protocol)
    for name in ("mpjpe", "pa_mpjpe", "pve", "pve_s", "pve_p", "pve_scale_aligned", "pve_procrustes"):
        assert float(errors[name].abs().max()) < 0.05, (name, errors[name])  # mm
    right = _predict(body, pose, betas)
    swapped = Prediction(right.betas, right.rotmats, right.vertices[:, body.vertex_mirror])  # labels swapped
    errors = sample_errors(body, lambda g: body, batch, swapped, genders, protocol)
    assert float(errors["mpjpe"].min()) > 20 and float(errors["pa_mpjpe"].min()) > 10, errors


def test_pve_s_and_pve_p_isolate_shape_and_pose(body):
    pose, betas = _asymmetric_pose(2, 2), torch.tensor([[1.5, -1.0] + [0.0] * 8, [-1.0, 2.0] + [0.0] * 8])
    batch = _ground_truth(body, pose, betas)
    right_shape = _predict(body, _asymmetric_pose(2, 3), betas)
    errors = sample_errors(body, lambda g: body, batch, right_shape, ["n", "n"])
    assert float(errors["pve_s"].abs().max()) < 1e-3 and float(errors["pve"].min()) > 10
    assert float(errors["pve_p"].min()) > 10
    right_pose = _predict(body, pose, torch.zeros(2, 10))
    errors = sample_errors(body, lambda g: body, batch, right_pose, ["n", "n"])
    assert float(errors["pve_p"].abs().max()) < 1e-3 and float(errors["pve_s"].min()) > 5
    assert float(errors["pve"].min()) > 5


def test_3dpw_scores_against_the_gendered_body(smpl_standin, body):
    """Ground truth from the male model (4 % larger here): the neutral prediction of the same parameters is
    off in joints and shape, not in pose; the gender callback is what the protocol uses."""
    _, files = smpl_standin
    male = load_body_model(files["smpl"], gender="male", h36m_regressor=files["h36m"])
    pose, betas = _asymmetric_pose(2, 4), torch.zeros(2, 10)
    batch = _ground_truth(male, pose, betas)
    asked = []

    def gt_bodies(gender):
        asked.append(gender)
        return male if gender == "m" else body

    errors = sample_errors(
        body, gt_bodies, batch, _predict(body, pose, betas), ["m", "m"], Protocol("3dpw", 14, "mesh")
    )
    assert asked == ["m"]
    assert float(errors["mpjpe"].min()) > 5 and float(errors["pve_s"].min()) > 5
    assert float(errors["pve_p"].abs().max()) < 1e-3  # the pose is right


def test_unlabelled_samples_score_nan_not_zero(body):
    pose = _asymmetric_pose(2, 5)
    batch = _ground_truth(body, pose, torch.zeros(2, 10))
    batch["has_smpl"] = torch.tensor([False, False])
    batch["has_kp3d"] = torch.tensor([True, False])
    errors = sample_errors(body, lambda g: body, batch, _predict(body, pose, torch.zeros(2, 10)), ["n", "n"])
    assert float(errors["mpjpe"][0]) < 0.05 and torch.isnan(errors["mpjpe"][1])
    assert bool(torch.isnan(errors["pve"]).all())


@pytest.mark.parametrize(
    ("dataset", "split", "expected"),
    [
        ("h36m", "valid_p1", Protocol("h36m-p1", 14, "keypoints")),
        ("h36m", "valid_p2", Protocol("h36m-p2", 14, "keypoints")),
        ("mpi_inf_3dhp", "test", Protocol("mpi-inf-3dhp", 17, "keypoints")),
        ("3dpw", "test", Protocol("3dpw", 14, "mesh")),
        ("synth", "val", Protocol("synth", 14, "auto")),
    ],
)
def test_protocol_by_dataset(dataset, split, expected):
    assert protocol_for(dataset, split) == expected
