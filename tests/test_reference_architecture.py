"""The paper preset's components behave like the authors' modules (hand-computed cases and their tables)."""

from __future__ import annotations

import torch

from model.config import RoIConfig
from model.iuv import GroupedPartialHead, onehot_uvi_maps, soft_argmax
from model.refine import (
    AggregatedRefinement,
    normalize_symmetric,
    refinement_adjacency,
)
from model.roi import REFERENCE_CHILD, JointRoI, bone_lengths
from pipeline.body.constants import SMPL_PARENTS
from tests.test_reference_import import small_config, small_model

# Transcribed from their utils/graph.py ('smpl_2neigh' layout) and smpl_regressor.py (add_links).
THEIR_NEIGHBOURS = [
    (0, 1), (1, 4), (4, 7), (7, 10), (0, 2), (2, 5), (5, 8), (8, 11), (0, 3), (3, 6), (6, 9), (9, 13), (13, 16),
    (16, 18), (18, 20), (20, 22), (9, 14), (14, 17), (17, 19), (19, 21), (21, 23), (9, 12), (12, 15), (12, 17),
    (12, 16),
]  # fmt: skip
THEIR_2NEIGHBOURS = [
    (0, 4), (0, 5), (0, 6), (2, 8), (1, 7), (5, 11), (4, 10), (3, 9), (6, 12), (9, 15), (6, 13), (9, 16),
    (13, 18), (16, 20), (18, 22), (6, 14), (9, 17), (14, 19), (17, 21), (19, 23),
]  # fmt: skip
THEIR_ADDED = [(1, 2), (1, 3), (2, 3), (13, 14), (12, 13), (12, 14)]


def test_refinement_graph_is_their_edge_list():
    theirs = torch.eye(24)
    for i, j in THEIR_NEIGHBOURS + THEIR_2NEIGHBOURS + THEIR_ADDED:
        theirs[i, j] = theirs[j, i] = 1.0
    assert torch.equal(refinement_adjacency(neck_shoulder=True), theirs)
    ours = refinement_adjacency(neck_shoulder=False)
    assert (theirs - ours).nonzero().tolist() == [[12, 16], [12, 17], [16, 12], [17, 12]]


def test_symmetric_normalisation_by_hand():
    a = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 3.0, 1.0]])
    # column sums 2, 5, 2 -> D^-1/2 A D^-1/2
    d = torch.tensor([2.0, 5.0, 2.0]).rsqrt()
    expected = torch.tensor(
        [
            [1 * d[0] * d[0], 1 * d[0] * d[1], 0],
            [1 * d[1] * d[0], 1 * d[1] * d[1], 1 * d[1] * d[2]],
            [0, 3 * d[2] * d[1], 1 * d[2] * d[2]],
        ]
    )
    assert torch.allclose(normalize_symmetric(a), expected)
    assert torch.equal(normalize_symmetric(torch.zeros(2, 2)), torch.zeros(2, 2))


def test_paper_refinement_batchnorm_over_joints_one_mask_and_no_r2p_self_loop():
    cfg = small_config().refine
    net = AggregatedRefinement(cfg, 16, 6).eval()
    assert net.rot_to_pos.bn.num_features == 24 and net.refine.layers[-1].bn.num_features == 24
    assert [n for n, _ in net.named_parameters() if "edges" in n] == ["refine.edges"]
    # no self loop: the root (no ancestor) reads nothing, a leaf's own rotation feature is read by nobody
    x = torch.randn(3, 24, 16)
    y = net.rot_to_pos(x)
    assert torch.allclose(net.rot_to_pos(torch.randn(3, 24, 16))[:, 0], y[:, 0])
    leaf = x.clone()
    leaf[:, 10] += 5.0  # the left foot
    assert torch.allclose(net.rot_to_pos(leaf), y)
    ours = AggregatedRefinement(type(cfg)(), 16, 6).eval()
    assert not torch.allclose(ours.rot_to_pos(leaf)[:, 10], ours.rot_to_pos(x)[:, 10])


def test_reference_bone_rule_uses_one_child():
    joints = torch.zeros(1, 24, 2)
    for i, p in enumerate(SMPL_PARENTS):
        if p >= 0:
            joints[0, i] = joints[0, p] + torch.tensor([0.0, -0.1])
    joints[0, 13] = joints[0, 9] + torch.tensor([0.5, 0.0])  # the left collar far from spine3
    all_children = bone_lengths(joints)
    one_child = bone_lengths(joints, children=REFERENCE_CHILD)
    assert torch.isclose(all_children[0, 9], torch.tensor(0.5))  # ours: spine3 sees the collar
    assert torch.isclose(one_child[0, 9], torch.tensor(0.1))  # theirs: spine3 -> neck (12) only
    assert torch.isclose(one_child[0, 10], torch.tensor(0.1))  # a leaf: its parent only


def test_hidden_joint_gets_point_eight_of_half_the_box():
    cfg = RoIConfig(bone_children="one", hidden_score=0.5, min_scale=0.0, jitter_mode="reference")
    roi = JointRoI(cfg).eval()
    joints = torch.rand(1, 24, 2) * 1.2 - 0.6
    probs = torch.zeros(1, 25, 16, 16)
    probs[:, 1] = 1.0  # every pixel is part 1 (torso back): visible for the torso joints only
    centers, scales = roi(joints, probs)
    half_box = (joints.amax(1) - joints.amin(1)).amax(-1) / 2
    torso = {0, 3, 6, 9, 12}  # VISIBILITY_PARTS include part 1
    size = bone_lengths(joints, children=REFERENCE_CHILD)
    for k in range(24):
        expected = roi.alpha[k] * size[0, k] + roi.delta[k] if k in torso else 0.8 * half_box[0]
        assert torch.isclose(scales[0, k], torch.as_tensor(expected), atol=1e-6), k
    assert torch.equal(centers, joints)


def test_onehot_uvi_maps_by_hand():
    index = torch.tensor([[[[0.1]], [[2.0]], [[-1.0]]]])  # (1, 3, 1, 1): part 1 wins
    u = torch.tensor([[[[0.3]], [[0.6]], [[0.9]]]])
    v = torch.tensor([[[[0.2]], [[0.4]], [[0.8]]]])
    maps = onehot_uvi_maps(index, u, v)
    assert torch.allclose(maps.flatten(), torch.tensor([0.0, 0.6, 0.0, 0.0, 0.4, 0.0, 0.0, 1.0, 0.0]))
    bg = onehot_uvi_maps(
        torch.tensor([[[[3.0]], [[2.0]], [[-1.0]]]]), u, v
    )  # background wins: its U/V are kept (the authors' iuvmap_clean)
    assert torch.allclose(bg.flatten()[:3], torch.tensor([0.3, 0.0, 0.0]))


def test_soft_argmax_index_grid():
    heat = torch.full((1, 1, 8, 8), -1e4)
    heat[0, 0, 2, 5] = 0.0
    assert soft_argmax(heat, 1.0, "index")[0, 0].tolist() == [5 / 4 - 1, 2 / 4 - 1]
    assert soft_argmax(heat, 1.0, "centers")[0, 0].tolist() == [5.5 / 4 - 1, 2.5 / 4 - 1]


def test_grouped_partial_head_keeps_joints_apart_in_u_v_i_order():
    head = GroupedPartialHead(4, 7)
    with torch.no_grad():
        head.conv.weight.zero_()
        head.conv.bias.copy_(torch.arange(24 * 21.0))
    out = head(torch.randn(2, 24, 4, 5, 5))
    assert out["u"][0, 3, 0, 0, 0] == 3 * 21 + 0  # joint 3: U then V then I
    assert out["v"][0, 3, 2, 0, 0] == 3 * 21 + 7 + 2
    assert out["index_logits"][1, 23, 6, 4, 4] == 23 * 21 + 14 + 6
    x = torch.zeros(1, 24, 4, 5, 5)
    x[0, 7] = 1.0
    with torch.no_grad():
        head.conv.weight.normal_()
        head.conv.bias.zero_()
    y = head(x)
    others = torch.cat([y["u"][:, :7], y["u"][:, 8:]], 1)
    assert others.abs().max() == 0 and y["u"][:, 7].abs().max() > 0


def test_the_smpl_branch_reaches_u_v_but_not_the_index_through_the_hard_maps():
    model = small_model().train()
    model.drop.rate = 0.0
    out = model(torch.randn(2, 3, 64, 64))
    (out["rotmats"].sum() + out["betas"].sum() + out["cam"].sum()).backward()
    assert model.iuv.heads.u.weight.grad.abs().sum() > 0  # not detached: U * H
    assert model.partial_heads.conv.weight.grad.abs().sum() > 0
    assert model.iuv.heads.index.weight.grad is None or model.iuv.heads.index.weight.grad.abs().sum() == 0


def test_dropout_finds_the_background_in_the_uvi_layout():
    from model.partdrop import foreground

    index = torch.tensor([[[[5.0, -5.0]], [[-5.0, 5.0]]]])  # (1, 2, 1, 2): pixel 0 background, pixel 1 part
    u = torch.full_like(index, 0.3)
    maps = onehot_uvi_maps(index, u, u)  # [U(2) | V(2) | I(2)]: U of the background is 0.3 at pixel 0
    assert foreground(maps, 1, "uvi").tolist() == [[[False, True]]]
    assert foreground(maps, 1, "iuv").tolist() != [[[False, True]]]  # reading U as the background is wrong
