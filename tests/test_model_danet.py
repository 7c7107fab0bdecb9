"""The full network: output shapes, gradients, D-Net, per-sample loss masks, configs, overfitting."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from model.config import ConfigError, config_from_dict, config_to_dict, load_config, paper_config, tiny_config
from model.danet import DaNet
from model.losses import danet_losses
from tests.model_fakes import FakeBody, consistent_batch, synthetic_batch


def test_tiny_output_shapes():
    cfg = tiny_config()
    torch.manual_seed(0)
    model = DaNet(cfg, FakeBody()).eval()
    image, targets = synthetic_batch(2, cfg.image_size)
    with torch.no_grad():
        out = model(image, targets)
    s, r = cfg.feature_size, cfg.roi.size
    assert out["index_logits"].shape == (2, 25, s, s) and out["u"].shape == (2, 25, s, s)
    assert out["coarse_logits"].shape == (2, 15, s, s) and out["heatmaps"].shape == (2, 24, s, s)
    assert out["joints2d"].shape == (2, 24, 2) and out["joints2d"].abs().max() <= 1
    assert out["partial_index_logits"].shape == (2, 24, 7, r, r)
    assert out["partial_maps"].shape == out["gt_partial"].shape == (2, 24, 21, r, r)
    assert out["cam"].shape == (2, 3) and out["betas"].shape == (2, 10)
    assert len(out["rotmats_stages"]) == 2 and out["rotmats"].shape == (2, 24, 3, 3)
    assert [p.shape for p in out["positions"]] == [(2, 24, 3)] * 2
    assert out["vertices"].shape == (2, 96, 3) and out["keypoints2d"].shape == (2, 24, 2)
    eye = torch.eye(3).expand(2, 24, 3, 3)
    assert torch.allclose(out["rotmats"] @ out["rotmats"].transpose(-1, -2), eye, atol=1e-5)


def test_paper_output_shapes_on_meta_device():
    with torch.device("meta"):
        model = DaNet(paper_config()).eval()
        out = model(torch.empty(1, 3, 224, 224))
    assert out["features"].shape == (1, 48, 56, 56)
    assert out["index_logits"].shape == (1, 25, 56, 56) and out["heatmaps"].shape == (1, 24, 56, 56)
    assert out["partial_maps"].shape == (1, 24, 21, 56, 56)  # the authors' partial maps are 56x56
    assert out["rotmats"].shape == (1, 24, 3, 3) and out["betas"].shape == (1, 10)
    assert model.local_streams.layer4[0].conv1.groups == 24
    assert model.partial_heads.conv.groups == 24 and model.partial_heads.conv.weight.shape == (504, 48, 3, 3)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "rotation": "matrix",
            "roi": {"learnable": True, "scale_mode": "box"},
            "refine": {"variant": "direct"},
        },
        {"roi": {"simplified": False}, "iuv": {"arch": "resnet"}, "drop": {"kind": "dropblock"}},
        {"decompose": False},
        {
            "detach_maps": False,
            "roi": {"detach_centers": False},
            "refine": {"variant": "position_implicit", "learnable_edges": False},
            "drop": {"kind": "dropout"},
        },
    ],
)
def test_every_trainable_parameter_gets_a_gradient(overrides):
    cfg = config_from_dict({"preset": "tiny", **overrides})
    torch.manual_seed(0)
    body = FakeBody()
    model = DaNet(cfg, body).train()
    image, targets = consistent_batch(body, 4, cfg.image_size)
    losses = danet_losses(model(image, targets), targets, cfg, body)
    losses["total"].backward()
    missing = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert missing == []


def test_samples_without_labels_do_not_change_the_loss():
    cfg = tiny_config()
    torch.manual_seed(0)
    body = FakeBody()
    model = DaNet(cfg, body).eval()
    image, targets = consistent_batch(body, 3, cfg.image_size)
    targets["has_smpl"] = torch.tensor([True, False, True])
    targets["has_iuv"] = torch.tensor([True, True, False])
    targets["has_kp3d"] = torch.tensor([False, True, True])
    targets["kp2d"][0, :, 2] = 0  # no visible 2D keypoint in sample 0
    with torch.no_grad():
        out = model(image, targets)
        base = danet_losses(out, targets, cfg, body)
        changed = {k: v.clone() for k, v in targets.items()}
        changed["pose"][1] += 1.0
        changed["betas"][1] += 1.0
        changed["iuv"][2] = changed["iuv"][2].roll(3, -1)
        changed["kp3d"][0, :, :3] += 1.0
        changed["kp2d"][0, :, :2] += 0.5
        out2 = dict(out, gt_partial=model(image, changed)["gt_partial"])
        again = danet_losses(out2, changed, cfg, body)
    for key in base:
        assert torch.allclose(base[key], again[key]), key
    assert {"pose", "betas", "refine_position", "kp3d", "kp2d", "part_index", "partial_index"} <= set(base)


def test_config_round_trips_through_yaml(tmp_path):
    import yaml

    cfg = tiny_config()
    cfg.refine.variant = "direct"
    path = tmp_path / "danet.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    assert load_config(path) == cfg
    path.write_text(yaml.safe_dump({"preset": "tiny", "roi": {"sise": 4}}))
    with pytest.raises(ConfigError, match=r"danet\.yaml: roi\.sise: unknown key; RoIConfig has: size, "):
        load_config(path)
    assert config_from_dict({"preset": "paper", "drop": {"rate": 0}}).drop.rate == 0.0


@pytest.fixture
def one_thread():
    """One intra-op thread: on a busy 2-core machine two OpenMP threads are ~10x slower for these small ops."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_config_overfits_eight_samples(one_thread):
    # ~80 steps: ~5-8 s on one core
    cfg = config_from_dict(
        {"preset": "tiny", "drop": {"kind": "none"}, "roi": {"jitter_position": 0.0, "jitter_scale": 0.0}}
    )
    torch.manual_seed(0)
    body = FakeBody()
    model = DaNet(cfg, body).train()
    image, targets = consistent_batch(body, 8, cfg.image_size)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    history = []
    start = time.perf_counter()
    for _ in range(200):
        loss = danet_losses(model(image, targets), targets, cfg, body)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
        if min(history[-5:]) * 10 <= history[0] and len(history) >= 5:
            break
    assert min(history[-5:]) * 10 <= history[0], (history[0], history[-5:], time.perf_counter() - start)


def test_mean_parameters_file_in_spins_layout_sets_the_starting_point(tmp_path):
    import numpy as np

    from model.rotations import rot6d_to_matrix

    rotations = rot6d_to_matrix(torch.randn(24, 6))
    spin_pose = rotations[:, :, :2].reshape(-1).numpy()  # SPIN: first two columns, 3 x 2 block, row-major
    path = tmp_path / "smpl_mean_params.npz"
    np.savez(path, pose=spin_pose, shape=np.arange(10, dtype=np.float32), cam=np.array([0.8, 0.1, 0.0]))
    cfg = config_from_dict({"preset": "tiny", "mean_params": str(path)})
    model = DaNet(cfg)
    torch.testing.assert_close(rot6d_to_matrix(model.mean_rotation), rotations, atol=1e-5, rtol=0)
    assert torch.equal(model.mean_betas, torch.arange(10.0)) and torch.allclose(
        model.mean_cam[0], torch.tensor(0.8)
    )
    np.savez(path, shape=np.zeros(10))
    with pytest.raises(KeyError, match="pose"):
        DaNet(cfg)


def test_synthetic_mean_params_round_trip_through_the_network(tmp_path):
    import numpy as np
    from scipy.spatial.transform import Rotation

    from model.rotations import rot6d_to_matrix
    from pipeline.synth.mean_params import write_mean_params

    rng = np.random.default_rng(0)
    base = Rotation.from_rotvec(rng.normal(size=(24, 3)) * 0.5)
    noise = Rotation.from_rotvec(rng.normal(size=(200, 24, 3)).reshape(-1, 3) * 0.05)
    poses = (Rotation.from_quat(np.tile(base.as_quat(), (200, 1))) * noise).as_rotvec().reshape(200, 72)
    write_mean_params(tmp_path / "mean.npz", poses, rng.normal(size=(200, 10)))
    model = DaNet(config_from_dict({"preset": "tiny", "mean_params": str(tmp_path / "mean.npz")}))
    mean = rot6d_to_matrix(model.mean_rotation).numpy()
    np.testing.assert_allclose(mean[1:], base.as_matrix()[1:], atol=0.01)  # chordal mean of jittered joints
    np.testing.assert_allclose(mean[0], Rotation.from_rotvec([np.pi, 0, 0]).as_matrix(), atol=1e-6)


def test_an_ablation_keeps_the_rest_of_its_base_preset():
    # what each switch changes in the network: tests/test_model_ablations.py
    from model.config import ablation

    dnet = ablation("dnet")
    assert dnet.refine.variant == "none" and dnet.iuv.hrnet.width == 48
    assert dataclasses.replace(dnet, refine=paper_config().refine) == paper_config()


def test_wide_adapter_and_ground_truth_stream_inputs():
    cfg = config_from_dict(
        {"preset": "tiny", "streams": {"adapter_channels": 16}, "gt_maps_in_training": True}
    )
    model = DaNet(cfg).train()
    assert model.global_stream.adapter.out_channels == 16
    assert model.global_stream.resnet.conv1.in_channels == 16
    image, targets = synthetic_batch(2, 64)
    out = model(image, targets)
    # with PartDrop off, the streams read exactly the ground-truth maps in training
    model.drop.kind = "none"
    global_maps, partial_maps = model.stream_inputs(out, targets)
    torch.testing.assert_close(global_maps, targets["iuv"].to(global_maps.dtype))
    torch.testing.assert_close(partial_maps, out["gt_partial"].to(partial_maps.dtype))
    model.eval()
    with torch.no_grad():
        eval_out = model(image)
    assert "gt_partial" not in eval_out  # inference never sees ground truth


def test_ground_truth_maps_diagnostic_feeds_the_streams_a_perfect_estimators_maps():
    model = DaNet(tiny_config()).eval()  # gt_maps_in_training off, evaluation mode: only the flag can do it
    image, targets = synthetic_batch(2, 64)
    with torch.no_grad():
        out = model(image, targets, ground_truth_maps=True)
        plain = model(image, targets)
    torch.testing.assert_close(out["global_maps"], targets["iuv"].to(out["global_maps"].dtype))
    torch.testing.assert_close(out["partial_maps"], out["gt_partial"].to(out["partial_maps"].dtype))
    gt_centres = targets["joints2d_smpl"][..., :2].to(out["roi_centers"].dtype)
    torch.testing.assert_close(out["roi_centers"], gt_centres)  # RoIs at the true joints
    assert not torch.allclose(plain["global_maps"], out["global_maps"])  # without the flag: its own maps
    with pytest.raises(ValueError, match="ground_truth_maps needs targets"):
        model(image, ground_truth_maps=True)
