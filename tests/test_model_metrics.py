"""Metrics (mm), rotations and the camera."""

from __future__ import annotations

import math

import torch

from model.camera import project
from model.metrics import (
    foreground_iou,
    mpjpe,
    oks,
    oks_matrix,
    pa_mpjpe,
    part_accuracy,
    pve,
    pve_procrustes,
    pve_scale_aligned,
    similarity_procrustes,
)
from model.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_rot6d, rot6d_to_matrix
from pipeline.body.constants import PART_FLIP, PART_TO_SEGMENT


def random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    aa = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return axis_angle_to_matrix(
        aa / aa.norm(dim=-1, keepdim=True) * torch.rand(n, 1, generator=g, dtype=torch.float64) * 3
    )


def test_pa_mpjpe_of_a_rotated_scaled_shifted_copy_is_zero():
    gt = torch.randn(4, 14, 3, dtype=torch.float64)
    pred = 1.7 * gt @ random_rotations(4).transpose(1, 2) + torch.randn(4, 1, 3, dtype=torch.float64)
    assert torch.allclose(pa_mpjpe(pred, gt), torch.zeros(4, dtype=torch.float64), atol=1e-9)
    assert torch.all(mpjpe(pred, gt) > 10)
    assert torch.allclose(pve_procrustes(pred, gt), torch.zeros(4, dtype=torch.float64), atol=1e-9)


def test_procrustes_never_reflects():
    gt = torch.randn(2, 10, 3, dtype=torch.float64)
    mirrored = gt * torch.tensor([-1.0, 1, 1], dtype=torch.float64)
    assert torch.all(pa_mpjpe(mirrored, gt) > 1)
    aligned = similarity_procrustes(mirrored, gt)
    assert aligned.shape == gt.shape


def test_pve_scale_aligned_aligns_scale_and_translation_but_not_rotation():
    gt = torch.randn(3, 50, 3, dtype=torch.float64)
    assert torch.allclose(
        pve_scale_aligned(0.5 * gt + 2.0, gt), torch.zeros(3, dtype=torch.float64), atol=1e-9
    )
    rotated = gt @ random_rotations(3, 1).transpose(1, 2)
    assert torch.all(pve_scale_aligned(rotated, gt) > 1) and torch.all(pve_procrustes(rotated, gt) < 1e-6)


def test_mpjpe_and_pve_in_millimetres():
    gt = torch.zeros(1, 5, 3)
    pred = gt + torch.tensor([0.003, 0.004, 0.0])  # 5 mm everywhere
    assert torch.allclose(mpjpe(pred, gt), torch.tensor([5.0]))
    assert torch.allclose(mpjpe(pred, gt, root=0), torch.tensor([0.0]))
    assert torch.allclose(pve(pred, gt), torch.tensor([5.0]))
    assert torch.allclose(pve(pred, gt, pred[:, 0], gt[:, 0]), torch.tensor([0.0]))


def test_oks_is_one_for_perfect_and_falls_with_distance():
    gt = torch.cat([torch.rand(2, 17, 2) * 100, torch.ones(2, 17, 1)], -1)
    gt[1, 3:, 2] = 0
    area = torch.tensor([5000.0, 5000.0])
    assert torch.allclose(oks(gt[..., :2], gt, area), torch.ones(2))
    far = oks(gt[..., :2] + 10, gt, area)
    assert torch.all(far < 1) and torch.all(far > 0)
    m = oks_matrix(gt[..., :2], gt, area)
    assert m.shape == (2, 2) and torch.allclose(m.diagonal(), torch.ones(2))


def test_rotation_conversions_round_trip():
    r = random_rotations(100, 2)
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(r)), r, atol=1e-9)
    assert torch.allclose(axis_angle_to_matrix(matrix_to_axis_angle(r)), r, atol=1e-7)
    flip = axis_angle_to_matrix(torch.tensor([[math.pi, 0.0, 0.0]], dtype=torch.float64))
    assert torch.allclose(axis_angle_to_matrix(matrix_to_axis_angle(flip)), flip, atol=1e-7)


def test_weak_perspective_projection_centres_the_origin_and_scales_with_s():
    cam = torch.tensor([[0.9, 0.0, 0.0], [1.8, 0.1, 0.0]])
    pts = torch.tensor([[[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]]).expand(2, 2, 3)
    xy = project(pts, cam)
    assert torch.allclose(xy[0, 0], torch.zeros(2))
    # weak perspective: x_norm ~= s * (X + tx); exact up to the point's depth offset (0 here)
    assert torch.allclose(xy[:, 1, 0], cam[:, 0] * (0.5 + cam[:, 1]), atol=1e-5)


def test_part_accuracy_counts_the_ground_truth_foreground_and_groups_merge_sides():
    gt = torch.zeros(3, 4, 4, dtype=torch.long)
    gt[:, :2, :2] = 9  # upper_leg_right_front, 4 pixels
    pred = gt.clone()
    pred[0, 3, 3] = 5  # a false positive on the background: no effect on accuracy, lowers the IoU
    pred[1, 0, 0] = PART_FLIP[9]  # left for right: wrong part, right segment
    pred[1, 0, 1] = 0  # missed pixel: wrong in both
    gt[2] = 0  # no person: no accuracy to speak of
    fine = part_accuracy(pred, gt)
    segment = part_accuracy(pred, gt, PART_TO_SEGMENT)
    assert fine[:2].tolist() == [100.0, 50.0] and math.isnan(fine[2])
    assert segment[:2].tolist() == [100.0, 75.0]
    iou = foreground_iou(pred, gt)
    assert iou.tolist() == [80.0, 75.0, 0.0]  # a person predicted where there is none


def test_masked_joint_errors_ignore_unlabelled_joints():
    gt = torch.randn(2, 14, 3, dtype=torch.float64)
    pred = gt.clone()
    pred[:, 5] += 10.0  # a joint far off, but unlabelled in the ground truth
    mask = torch.ones(2, 14, dtype=torch.bool)
    mask[:, 5] = False
    assert torch.allclose(mpjpe(pred, gt, mask=mask), torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(pa_mpjpe(pred, gt, mask=mask), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    assert torch.all(pa_mpjpe(pred, gt) > 100)
    # by hand: one of two labelled joints 3-4-5 mm off -> mean 2.5 mm
    a, b = torch.zeros(1, 3, 3), torch.zeros(1, 3, 3)
    b[0, 0] = torch.tensor([0.003, 0.004, 0.0])
    b[0, 2] = 1.0
    assert torch.allclose(mpjpe(a, b, mask=torch.tensor([[True, True, False]])), torch.tensor([2.5]))
