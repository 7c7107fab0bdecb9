"""The paper preset's losses are the authors' trainer's (HongwenZhang/DaNet-DensePose2SMPL); the tiny preset's
are unchanged. Expected values are worked out by hand on tensors of a few entries; the authors' definitions
are restated from their code in the comments (docs/reference-losses.md has the table)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model.config import config_from_dict, paper_config, tiny_config
from model.losses import danet_losses, inter_losses, loss_weights, target_losses
from model.rotations import axis_angle_to_matrix
from tests.model_fakes import FakeBody, synthetic_batch

# The demo's loss overrides (configs/train/demo.yaml, model.overrides.loss).
DEMO_LOSS = {"kp2d": 30.0, "kp3d": 30.0, "betas": 1.0, "index_foreground_weight": 5.0, "kp3d_frame": "body"}


def _paper_and_tiny():
    return paper_config(), tiny_config()


def _smpl_pred(batch: int, **extra) -> dict:
    """Predictions the target losses need besides the ones under test: identity rotations, scale 0.9."""
    rot = torch.eye(3).repeat(batch, 24, 1, 1)
    return {"rotmats": rot, "rotmats_stages": [rot], "cam": torch.tensor([[0.9, 0.0, 0.0]] * batch), **extra}


def _onehot_maps(labels: torch.Tensor, u: torch.Tensor, v: torch.Tensor, k: int = 25) -> torch.Tensor:
    """(B, h, w) labels, U, V -> (B, 3k, h, w) one-hot layout [I | U | V], U/V on the labelled channel only."""
    i = F.one_hot(labels, k).permute(0, 3, 1, 2).float()
    return torch.cat([i, i * u[:, None], i * v[:, None]], 1)


# ---------------------------------------------------------------- weights: configs/danet_default.yaml, DANET.*


def test_paper_weights_are_the_authors_trainer_config():
    paper, _ = _paper_and_tiny()
    w = loss_weights(paper)
    authors = {
        "pose": 60.0,  # SMPL_POSE_WEIGHTS
        "refine_rotation": 60.0,  # the pre-refinement rotations ("joint_rotation0"), same weight
        "betas": 0.06,  # SMPL_BETAS_WEIGHTS
        "kp2d": 300.0,  # PROJ_KPS_WEIGHTS
        "kp3d": 300.0,  # KPS3D_WEIGHTS
        "vertices": 0.0,  # VERTS_WEIGHTS
        "orthogonality": 0.0,  # ORTHOGONAL_WEIGHTS
        "refine_position": 1.0,  # JOINT_POSITION_WEIGHTS
        "joints2d": 1.0,  # STN_KPS_WEIGHTS (RoI centres)
        "uv": 0.5,  # POINT_REGRESSION_WEIGHTS, applied to the rendered maps' U and V too
        "partial_uv": 0.5,
        "part_index": 1.0,  # rendered maps: F.cross_entropy with no weight (0.3 is DensePose-COCO points')
        "partial_index": 1.0,
        "coarse_index": 1.0,  # rendered maps' 15-part CE, no weight (2.0 is DensePose-COCO masks')
        "cam_positive": 1.0,  # 'cam' term, added unweighted
        "dp_part_index": 0.3,  # PART_WEIGHTS: DensePose-COCO point part CE (dp_uvia_losses)
        "dp_uv": 0.5,  # POINT_REGRESSION_WEIGHTS on the points' U and V
        "dp_coarse_index": 2.0,  # INDEX_WEIGHTS: DensePose-COCO coarse mask CE
    }
    assert w == authors
    assert paper.loss.index_foreground_weight == 1.0 and paper.loss.kp3d_frame == "camera"


def test_tiny_keeps_its_own_weights_and_forms():
    _, tiny = _paper_and_tiny()
    w = loss_weights(tiny)
    assert (w["part_index"], w["coarse_index"], w["uv"], w["cam_positive"]) == (0.3, 2.0, 0.5, 0.0)
    loss = tiny.loss
    assert (loss.uv_form, loss.joints2d_form, loss.refine_position_form) == ("l1_mean", "l1_mean", "mse_mean")
    assert (loss.refine_position_frame, loss.keypoint_mean) == ("pelvis", "visible")


# ---------------------------------------------------------------- rendered IUV maps


def _iuv_case():
    """2 samples of 2x2 maps; sample 1 has no maps (has_iuv False) and garbage predictions."""
    labels = torch.tensor([[[0, 3], [3, 5]], [[1, 1], [1, 1]]])
    gt_u = torch.tensor([[[0.0, 0.2], [0.6, 0.9]], [[0.5] * 2] * 2])
    gt_v = torch.tensor([[[0.0, 0.1], [0.3, 0.4]], [[0.5] * 2] * 2])
    gt = _onehot_maps(labels, gt_u, gt_v)
    u, v = gt[:, 25:50].clone(), gt[:, 50:].clone()
    u[0, 3, 0, 1] += 0.4  # labelled channel of a part pixel: smooth-L1 0.5 * 0.4^2 = 0.08
    u[0, 0, 0, 0] = 2.0  # background pixel, channel 0 (target 0): |2| - 0.5 = 1.5 in the authors' sum
    u[0, 7, 1, 1] = 9.0  # not the pixel's label: never read
    u[1], v[1] = 5.0, -5.0
    logits = torch.zeros(2, 25, 2, 2)
    logits[0, 0, 0, 0] = 100.0  # the background pixel right with certainty: CE ~0; the other 3 log(25)
    pred = {"index_logits": logits, "u": u, "v": v, "coarse_logits": torch.zeros(2, 15, 2, 2)}
    return pred, {"iuv": gt, "has_iuv": torch.tensor([True, False])}


def test_paper_uv_is_smooth_l1_summed_over_labelled_channels_background_included_over_batch():
    pred, targets = _iuv_case()
    terms = inter_losses(pred, targets, paper_config().loss)
    assert terms["uv"].item() == pytest.approx((0.08 + 1.5) / 2)  # / B = 2, though 1 sample has maps


def test_tiny_uv_is_l1_mean_over_foreground_pixels():
    pred, targets = _iuv_case()
    terms = inter_losses(pred, targets, tiny_config().loss)
    assert terms["uv"].item() == pytest.approx(0.4 / 3)  # 3 part pixels; background never read


def test_paper_index_cross_entropies_are_plain_means_over_the_labelled_samples():
    pred, targets = _iuv_case()
    terms = inter_losses(pred, targets, paper_config().loss)
    assert terms["part_index"].item() == pytest.approx(3 / 4 * math.log(25), rel=1e-6)
    assert terms["coarse_index"].item() == pytest.approx(math.log(15), rel=1e-6)


def test_paper_partial_uv_is_the_per_joint_sum_averaged_over_the_24_joints():
    b, k, r = 2, 7, 1
    labels = torch.ones(b, 24, r, r, dtype=torch.long)
    i = F.one_hot(labels, k).permute(0, 1, 4, 2, 3).float()
    gt_partial = torch.cat([i, i * 0.5, i * 0.5], 2)  # (B, 24, 21, 1, 1)
    pu, pv = gt_partial[:, :, 7:14].clone(), gt_partial[:, :, 14:].clone()
    pu[0, 4, 1] += 0.4  # one joint, its labelled channel: 0.08
    pv[1, 9, 1] += 3.0  # second sample: |3| - 0.5 = 2.5
    pred, targets = _iuv_case()
    pred.update(
        gt_partial=gt_partial, partial_u=pu, partial_v=pv, partial_index_logits=torch.zeros(b, 24, k, r, r)
    )
    targets["has_iuv"] = torch.tensor([True, True])
    terms = inter_losses(pred, targets, paper_config().loss)
    assert terms["partial_uv"].item() == pytest.approx((0.08 + 2.5) / 24 / 2)
    assert terms["partial_index"].item() == pytest.approx(math.log(7), rel=1e-6)


# ---------------------------------------------------------------- RoI centres (soft-argmax joints)


def test_paper_joint_centres_are_weighted_smooth_l1_summed_over_batch():
    gt = torch.zeros(2, 24, 3)
    gt[0, :3, 2] = 1.0
    gt[1, 0, 2] = 0.5  # the authors multiply by the target's weight
    joints = torch.zeros(2, 24, 2)
    joints[0, 0] = torch.tensor([0.2, -0.4])  # 0.5 * (0.04 + 0.16) = 0.1
    joints[0, 1] = torch.tensor([1.5, 0.0])  # 1.5 - 0.5 = 1.0
    joints[0, 5] = torch.tensor([3.0, 3.0])  # weight 0: nothing
    joints[1, 0] = torch.tensor([0.2, 0.0])  # 0.5 * 0.5 * 0.04 = 0.01
    pred = {"index_logits": torch.zeros(2, 25, 2, 2), "joints2d": joints}
    terms = inter_losses(pred, {"joints2d_smpl": gt}, paper_config().loss)
    assert terms["joints2d"].item() == pytest.approx((0.1 + 1.0 + 0.01) / 2)
    tiny = inter_losses(pred, {"joints2d_smpl": gt}, tiny_config().loss)["joints2d"].item()
    assert tiny == pytest.approx(((0.6 + 1.5) / 3 + 0.2) / 2)  # L1 mean over visible, then over samples


# ---------------------------------------------------------------- position-aided refinement


def _position_case():
    """2 joints in the model's frame (pelvis not at the origin); sample 1 has no SMPL fit."""
    gt = torch.tensor([[[0.0, -0.2, 0.0], [0.1, 0.0, 0.3]]] * 2)
    y = gt.clone()
    y[0, 0, 0] += 0.05
    y[0, 1, 1] -= 0.1  # stage Y: L1 sum 0.15
    y_hat = gt + 0.02  # stage Y^: 6 x 0.02 = 0.12
    y[1] = y_hat[1] = 7.0
    pred = _smpl_pred(2, positions=[y, y_hat])
    targets = {
        "smpl_joints": gt,
        "smpl_vertices": torch.zeros(2, 4, 3),
        "has_smpl": torch.tensor([True, False]),
    }
    return pred, targets


def test_paper_position_loss_is_l1_summed_over_joints_and_coordinates_and_stages():
    pred, targets = _position_case()
    terms = target_losses(pred, targets, paper_config())
    assert terms["refine_position"].item() == pytest.approx(0.15 + 0.12)


def test_paper_position_frame_is_the_models_own_not_the_pelvis():
    pred, targets = _position_case()
    targets["has_smpl"] = torch.tensor([True, True])
    exact = targets["smpl_joints"]
    pred["positions"] = [exact, exact]
    paper = paper_config()
    assert target_losses(pred, targets, paper)["refine_position"].item() == 0.0
    paper.loss.refine_position_frame = (
        "pelvis"  # the target moves by the pelvis (0, -0.2, 0): 2 x 0.2 per stage
    )
    assert target_losses(pred, targets, paper)["refine_position"].item() == pytest.approx(0.8)


def test_tiny_position_loss_is_the_mean_squared_distance_to_the_pelvis_relative_joints():
    pred, targets = _position_case()
    value = target_losses(pred, targets, tiny_config())["refine_position"].item()
    # target (0, 0, 0), (0.1, 0.2, 0.3); Y: (0.05, -0.2, 0), (0.1, -0.1, 0.3) -> (0.0425 + 0.09) / 2;
    # Y^: (0.02, -0.18, 0.02), (0.12, 0.02, 0.32) -> 0.0332 both; mean over the two stages
    assert value == pytest.approx(((0.0425 + 0.09) / 2 + 0.0332) / 2)


# ---------------------------------------------------------------- keypoints


def _keypoint_pred_targets():
    kp3d = torch.zeros(2, 24, 4)
    kp3d[..., 3] = 1.0
    kp3d[0, 6, 3] = 0.0
    p3 = torch.zeros(2, 24, 3)
    p3[0, 5] = torch.tensor([0.1, 0.2, 0.2])  # squared 0.09 (hips 2, 3 exact: no pelvis shift)
    p3[0, 6] = 1.0  # confidence 0
    p3[1] = 4.0  # no 3D labels
    kp2d = torch.zeros(2, 24, 3)
    kp2d[..., 2] = 1.0
    kp2d[0, 3, 2] = 0.0
    p2 = torch.zeros(2, 24, 2)
    p2[0, 0] = torch.tensor([0.1, 0.2])  # 0.05
    p2[0, 3] = 1.0  # invisible
    p2[1, 5] = torch.tensor([0.3, 0.0])  # 0.09
    pred = _smpl_pred(2, keypoints3d=p3, keypoints2d=p2)
    targets = {"kp3d": kp3d, "has_kp3d": torch.tensor([True, False]), "kp2d": kp2d}
    return pred, targets


def test_paper_keypoint_losses_average_over_every_entry():
    pred, targets = _keypoint_pred_targets()
    terms = target_losses(pred, targets, paper_config())
    assert terms["kp3d"].item() == pytest.approx(0.09 / (24 * 3))  # 1 labelled sample x 24 joints x 3
    assert terms["kp2d"].item() == pytest.approx((0.05 + 0.09) / (2 * 49 * 2))  # SPIN's 49 rows x 2, all B


def test_tiny_keypoint_losses_average_over_visible_joints():
    pred, targets = _keypoint_pred_targets()
    terms = target_losses(pred, targets, tiny_config())
    assert terms["kp3d"].item() == pytest.approx(0.09 / 23)
    assert terms["kp2d"].item() == pytest.approx((0.05 / 23 + 0.09 / 24) / 2)


def test_paper_camera_term_pushes_the_scale_positive():
    pred = _smpl_pred(2)
    pred["cam"] = torch.tensor([[0.0, 0.3, 0.1], [0.1, 0.0, 0.0]])
    terms = target_losses(pred, {}, paper_config())
    assert terms["cam_positive"].item() == pytest.approx((1 + math.exp(-2)) / 2)
    assert "cam_positive" not in target_losses(pred, {}, tiny_config())


# ---------------------------------------------------------------- whole batch: tiny unchanged, paper as theirs


def fixed_case(batch: int = 3, size: int = 8, roi: int = 4):
    """Predictions and targets of every kind, from seeded generators (no network involved)."""
    g = torch.Generator().manual_seed(11)
    _, targets = synthetic_batch(batch, size * 4, seed=3)
    targets["has_smpl"] = torch.tensor([True, False, True])
    targets["kp2d"][0, 5:, 2] = 0.0

    def r(*shape):
        return torch.randn(*shape, generator=g)

    gt_partial = torch.zeros(batch, 24, 21, roi, roi)
    lab = torch.randint(0, 7, (batch, 24, roi, roi), generator=g)
    gt_partial[:, :, :7] = F.one_hot(lab, 7).permute(0, 1, 4, 2, 3).float()
    gt_partial[:, :, 7:14] = gt_partial[:, :, :7] * torch.rand(batch, 24, 1, roi, roi, generator=g)
    gt_partial[:, :, 14:] = gt_partial[:, :, :7] * torch.rand(batch, 24, 1, roi, roi, generator=g)
    rot = [axis_angle_to_matrix(r(batch, 24, 3) * 0.3) for _ in range(2)]
    pred = {
        "index_logits": r(batch, 25, size, size),
        "u": torch.rand(batch, 25, size, size, generator=g),
        "v": torch.rand(batch, 25, size, size, generator=g),
        "coarse_logits": r(batch, 15, size, size),
        "gt_partial": gt_partial,
        "partial_index_logits": r(batch, 24, 7, roi, roi),
        "partial_u": torch.rand(batch, 24, 7, roi, roi, generator=g),
        "partial_v": torch.rand(batch, 24, 7, roi, roi, generator=g),
        "joints2d": r(batch, 24, 2) * 0.5,
        "rotmats_stages": rot,
        "rotmats": rot[-1],
        "betas": r(batch, 10),
        "positions": [r(batch, 24, 3) * 0.3, r(batch, 24, 3) * 0.3],
        "vertices": r(batch, 96, 3) * 0.3,
        "keypoints3d": r(batch, 24, 3) * 0.3,
        "keypoints2d": r(batch, 24, 2) * 0.5,
        "cam": torch.tensor([[0.9, 0.0, 0.0]] * batch),
    }
    return pred, targets, FakeBody()


# Recorded on main (3ff2bfe) before the paper forms existed.
MAIN_TINY = {
    "part_index": 3.71414828, "uv": 0.56785947, "coarse_index": 3.10521674, "partial_index": 2.36265969,
    "partial_uv": 0.67848951, "joints2d": 0.94715929, "pose": 0.10310987, "refine_rotation": 0.1109609,
    "betas": 0.86639941, "refine_position": 0.67793369, "vertices": 1.33129978, "kp3d": 0.51972866,
    "kp2d": 0.7351892, "total": 399.6533203125,
}  # fmt: skip
MAIN_DEMO_TOTAL = 65.22627258300781


def test_tiny_and_demo_losses_on_a_fixed_batch_are_those_of_main():
    pred, targets, body = fixed_case()
    terms = danet_losses(pred, targets, tiny_config(), body)
    assert set(terms) == set(MAIN_TINY)
    for name, value in MAIN_TINY.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-6, abs=1e-8), name
    demo = config_from_dict({"preset": "tiny", "loss": DEMO_LOSS})
    assert danet_losses(pred, targets, demo, body)["total"].item() == pytest.approx(MAIN_DEMO_TOTAL, rel=1e-6)


def test_paper_terms_match_the_authors_formulas_written_their_way():
    """Their code selects entries with boolean masks and calls torch's losses with sum / mean reductions;
    ours multiplies by masks. Both on the fixed batch."""
    pred, targets, body = fixed_case()
    paper = paper_config()
    terms = danet_losses(pred, targets, paper, body)
    b = pred["u"].shape[0]
    gt = targets["iuv"]
    imap, umap, vmap = gt[:, :25], gt[:, 25:50], gt[:, 50:]
    # iuv_estimator.body_uv_losses
    u_sum = F.smooth_l1_loss(pred["u"][imap > 0], umap[imap > 0], reduction="sum") / b
    v_sum = F.smooth_l1_loss(pred["v"][imap > 0], vmap[imap > 0], reduction="sum") / b
    assert terms["uv"].item() == pytest.approx((u_sum + v_sum).item(), rel=1e-5)
    ce = F.cross_entropy(pred["index_logits"].permute(0, 2, 3, 1).reshape(-1, 25), imap.argmax(1).reshape(-1))
    assert terms["part_index"].item() == pytest.approx(ce.item(), rel=1e-5)
    gp = pred["gt_partial"]
    per_joint = [
        F.smooth_l1_loss(
            pred["partial_u"][:, j][gp[:, j, :7] > 0], gp[:, j, 7:14][gp[:, j, :7] > 0], reduction="sum"
        )
        / b
        + F.smooth_l1_loss(
            pred["partial_v"][:, j][gp[:, j, :7] > 0], gp[:, j, 14:][gp[:, j, :7] > 0], reduction="sum"
        )
        / b
        for j in range(24)
    ]
    assert terms["partial_uv"].item() == pytest.approx((sum(per_joint) / 24).item(), rel=1e-5)
    # iuv_estimator: loss_roi, summed per target weight, / batch size
    kps = targets["joints2d_smpl"]
    roi = sum(
        F.smooth_l1_loss(pred["joints2d"][kps[..., 2] == w], kps[..., :2][kps[..., 2] == w], reduction="sum")
        * w
        for w in torch.unique(kps[..., 2])
        if w != 0
    )
    assert terms["joints2d"].item() == pytest.approx((roi / b).item(), rel=1e-5)
    # smpl_regressor.l1_losses on the SMPL joints posed without translation, per stage
    has = targets["has_smpl"]
    gj = body(targets["betas"], targets["pose"]).joints
    pos = sum(F.l1_loss(p[has], gj[has], reduction="sum") / gj[has].shape[0] for p in pred["positions"])
    assert terms["refine_position"].item() == pytest.approx(pos.item(), rel=1e-5)
    # smpl_regressor.keypoint_loss: (conf * MSE(reduction none)).mean() on SPIN's 49 rows (25 OpenPose at 0)
    kp2d = torch.cat([torch.zeros(b, 25, 3), targets["kp2d"]], 1)
    p2 = torch.cat([torch.zeros(b, 25, 2), pred["keypoints2d"]], 1)
    kp2 = (kp2d[..., 2:] * F.mse_loss(p2, kp2d[..., :2], reduction="none")).mean()
    assert terms["kp2d"].item() == pytest.approx(kp2.item(), rel=1e-5)
    # smpl_regressor.keypoint_3d_loss: pelvis (hips 2, 3) centred, (conf * MSE).mean() on samples with 3D
    g3, p3 = targets["kp3d"], pred["keypoints3d"]
    g3c = g3[..., :3] - (g3[:, 2, :3] + g3[:, 3, :3])[:, None] / 2
    p3c = p3 - (p3[:, 2] + p3[:, 3])[:, None] / 2
    kp3 = (g3[..., 3:] * F.mse_loss(p3c, g3c, reduction="none")).mean()  # every sample has 3D here
    assert terms["kp3d"].item() == pytest.approx(kp3.item(), rel=1e-5)
    # smpl_regressor.smpl_losses: MSE of rotation matrices and betas on samples with SMPL
    gt_rot = axis_angle_to_matrix(targets["pose"].reshape(b, 24, 3))
    assert terms["pose"].item() == pytest.approx(
        F.mse_loss(pred["rotmats"][has], gt_rot[has]).item(), rel=1e-5
    )
    assert terms["betas"].item() == pytest.approx(
        F.mse_loss(pred["betas"][has], targets["betas"][has]).item(), rel=1e-5
    )
