"""Joint-centric RoI placement: bone / box scales, per-joint constants, jitter only in training."""

from __future__ import annotations

import torch

from model.config import RoIConfig
from model.roi import JointRoI, bone_lengths, foreground_box_side
from pipeline.body.constants import ROI_ALPHA, ROI_DELTA, SMPL_PARENTS


def random_joints(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 24, 2, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8


def test_bone_length_is_the_longer_bone_to_parent_or_child_and_root_half_the_box():
    joints = random_joints()
    got = bone_lengths(joints)
    for b in range(2):
        box = (joints[b].max(0).values - joints[b].min(0).values).max()
        assert torch.isclose(got[b, 0], box / 2)
        for k in range(1, 24):
            near = [SMPL_PARENTS[k]] + [c for c in range(24) if SMPL_PARENTS[c] == k]
            want = max((joints[b, k] - joints[b, n]).norm() for n in near)
            assert torch.isclose(got[b, k], want)


def test_bone_rule_uses_the_published_constants_and_equal_mode_their_means():
    joints = random_joints()
    roi = JointRoI(RoIConfig()).eval()
    centers, scales = roi(joints)
    assert torch.equal(centers, joints)
    want = torch.tensor(ROI_ALPHA) * bone_lengths(joints) + torch.tensor(ROI_DELTA)
    assert torch.allclose(scales, want)
    equal = JointRoI(RoIConfig(alpha_mode="equal")).eval()
    assert torch.allclose(equal.alpha, torch.full((24,), sum(ROI_ALPHA) / 24))
    assert sum(p.numel() for p in roi.parameters()) == 0
    assert sum(p.numel() for p in JointRoI(RoIConfig(learnable=True)).parameters()) == 48


def test_box_rule_reads_the_foreground_box_of_the_index_map():
    probs = torch.zeros(1, 25, 8, 8)
    probs[:, 0] = 1
    probs[:, 0, 2:6, 1:4] = 0  # foreground rows 2..5 (4 px), cols 1..3 (3 px)
    probs[:, 3, 2:6, 1:4] = 1
    assert torch.allclose(foreground_box_side(probs), torch.tensor([4 / 8 * 2]))
    assert torch.allclose(foreground_box_side(torch.ones(1, 25, 4, 4)), torch.tensor([2.0]))  # empty map
    roi = JointRoI(RoIConfig(scale_mode="box", box_alpha=0.5, box_delta=0.1)).eval()
    _, scales = roi(random_joints(1), probs)
    assert torch.allclose(scales, torch.full((1, 24), 0.5 * 1.0 + 0.1))


def test_jitter_only_in_training_and_bounded():
    joints = random_joints(64)
    roi = JointRoI(RoIConfig(jitter_position=0.1, jitter_scale=0.2))
    base_c, base_s = roi.eval()(joints)
    c, s = roi.train()(joints)
    assert not torch.equal(c, base_c) and not torch.equal(s, base_s)
    assert torch.all((c - base_c).abs() <= 0.1 * base_s[..., None] + 1e-6)
    assert torch.all((s / base_s - 1).abs() <= 0.2 + 1e-6)


def test_ground_truth_centres_in_training_only_where_visible():
    from model.config import config_from_dict
    from model.danet import DaNet
    from tests.model_fakes import synthetic_batch

    cfg = config_from_dict(
        {"preset": "tiny", "roi": {"gt_centers_in_training": True, "jitter_position": 0, "jitter_scale": 0}}
    )
    torch.manual_seed(0)
    model = DaNet(cfg)
    image, targets = synthetic_batch(2, cfg.image_size)
    targets["joints2d_smpl"][:, 5:, 2] = 0
    with torch.no_grad():
        train = model.train()(image, targets)
        evaluation = model.eval()(image, targets)
    assert torch.allclose(train["roi_centers"][:, :5], targets["joints2d_smpl"][:, :5, :2])
    assert torch.allclose(train["roi_centers"][:, 5:], train["joints2d"][:, 5:])
    assert torch.allclose(evaluation["roi_centers"], evaluation["joints2d"])
