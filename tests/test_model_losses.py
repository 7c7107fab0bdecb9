"""Loss terms: which pixels and samples each one reads."""

from __future__ import annotations

import torch

from model.losses import index_ce, iuv_terms, masked_mean, uv_l1
from tests.model_fakes import synthetic_iuv


def test_uv_l1_reads_only_the_ground_truth_parts_channel_on_foreground():
    gt = synthetic_iuv(2, 8, seed=4)
    gt_i, gt_u = gt[:, :25], gt[:, 25:50]
    pred = gt_u.clone()
    pred[gt_i == 0] = 7.0  # garbage everywhere the label is not: other parts' channels, background
    pred[:, 0] = 9.0
    assert torch.allclose(uv_l1(pred, gt_u, gt_i), torch.zeros(2))
    pred[gt_i == 1] += 0.5
    pred[:, 0][gt_i[:, 0] == 1] -= 0.5  # the background channel is never read, even where labelled
    assert torch.allclose(uv_l1(pred, gt_u, gt_i), torch.full((2,), 0.5))


def test_perfect_logits_give_zero_index_loss_and_masked_mean_ignores_unlabelled():
    gt = synthetic_iuv(2, 8)
    ce, uv = iuv_terms(gt[:, :25] * 50, gt[:, 25:50], gt[:, 50:], gt)
    assert torch.all(ce < 1e-6) and torch.allclose(uv, torch.zeros(2))
    wrong = index_ce(torch.zeros(2, 25, 8, 8), gt[:, :25].argmax(1))
    assert torch.allclose(wrong, torch.full((2,), float(torch.log(torch.tensor(25.0)))))
    assert masked_mean(torch.tensor([1.0, 100.0]), torch.tensor([True, False])) == 1.0
    assert masked_mean(torch.tensor([1.0, 100.0]), torch.tensor([False, False])) == 0.0


def test_foreground_weight_scales_part_pixels_against_background():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :1] = 3  # 4 part pixels, 12 background pixels
    logits = torch.zeros(1, 25, 4, 4)
    logits[:, 0] = 10.0  # confident background everywhere: right on background, wrong on the part
    per_pixel = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    fg_loss, bg_loss = float(per_pixel[0, 0, 0]), float(per_pixel[0, 1, 0])
    plain = index_ce(logits, labels)
    assert torch.allclose(plain, torch.tensor([(4 * fg_loss + 12 * bg_loss) / 16]))
    weighted = index_ce(logits, labels, foreground_weight=3.0)
    assert torch.allclose(weighted, torch.tensor([(12 * fg_loss + 12 * bg_loss) / 24]))


def test_iuv_image_reads_back_the_one_hot_maps():
    from model.iuv import iuv_image
    from pipeline.render.iuv import onehot_to_iuv

    gt = synthetic_iuv(2, 8, seed=5)
    image = iuv_image(gt[:, :25] * 50, gt[:, 25:50], gt[:, 50:])
    assert torch.allclose(image, onehot_to_iuv(gt), atol=1e-5)


def _keypoint_case(kp3d_frame: str) -> dict[str, torch.Tensor]:
    """Predicted and ground-truth skeletons identical up to the root rotation; sample 1 has no SMPL fit."""
    from model.config import tiny_config
    from model.losses import target_losses
    from model.rotations import axis_angle_to_matrix

    torch.manual_seed(0)
    local = torch.randn(2, 24, 3) * 0.3  # keypoints in the body's own axes, metres
    local = local - local[:, [2, 3]].mean(1, keepdim=True)  # hips' midpoint at the origin
    gt_root = axis_angle_to_matrix(torch.tensor([[0.3, 2.5, -0.2], [0.1, -1.0, 0.4]]))
    pred_root = axis_angle_to_matrix(torch.tensor([[0.0, 0.4, 0.1], [0.5, 0.0, 0.0]]))
    rotmats = torch.eye(3).repeat(2, 24, 1, 1)
    rotmats[:, 0] = pred_root
    gt_pose = torch.eye(3).repeat(2, 24, 1, 1)
    gt_pose[:, 0] = gt_root
    pred = {"rotmats": rotmats, "rotmats_stages": [rotmats], "keypoints3d": local @ pred_root.transpose(1, 2)}
    kp3d = torch.cat([local @ gt_root.transpose(1, 2), torch.ones(2, 24, 1)], -1)
    targets = {"kp3d": kp3d, "pose": gt_pose, "has_smpl": torch.tensor([True, False])}
    cfg = tiny_config()
    cfg.loss.kp3d_frame = kp3d_frame
    per_sample = []
    for i in range(2):  # one sample at a time, to see each one's error
        one = {k: v[i : i + 1] for k, v in targets.items()}
        p = {k: [s[i : i + 1] for s in v] if isinstance(v, list) else v[i : i + 1] for k, v in pred.items()}
        per_sample.append(target_losses(p, one, cfg)["kp3d"])
    return torch.stack(per_sample)


def test_body_frame_keypoint_loss_ignores_the_root_rotation_where_the_fit_is_known():
    camera = _keypoint_case("camera")
    body = _keypoint_case("body")
    assert torch.all(camera > 0.01)  # the camera frame charges the wrong root to every keypoint
    assert body[0] < 1e-10  # sample 0: same skeleton, other root -> no 3D keypoint error in the body frame
    assert torch.allclose(body[1], camera[1])  # sample 1 has no SMPL root to turn by: camera frame
