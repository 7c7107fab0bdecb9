"""Augmentation on the training device (pipeline.augment_torch, data.augment_on=device) against the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline import augment_torch as T
from pipeline import loader as L
from tests.test_shards_helpers import build_shards, fake_flip_iuv


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build_shards(tmp_path_factory.mktemp("augment_torch"), 24, shard_size=12, crop_size=256,
                        image_size=(320, 240))  # fmt: skip


def _both_modes(folder, **kwargs):
    kw = dict(batch_size=24, seed=11, shuffle=False, flip_iuv_fn=fake_flip_iuv, **kwargs)
    cpu = next(iter(L.make_dataset([folder], onehot=True, **kw)))
    deferred = next(iter(L.make_dataset([folder], augment_on="device", **kw)))
    return cpu, deferred


def test_device_path_equals_the_cpu_path_on_the_same_draws(toy):
    cpu, deferred = _both_modes(toy)
    assert "image" not in deferred and deferred["crop"].shape == (24, 256, 256, 3)
    assert deferred["input_to_crop"].dtype == torch.float64 and deferred["colour"].shape == (24, 3)
    out = T.device_augment(deferred, out_size=224, onehot=True)
    assert (
        cpu["key"] == out["key"] and out["flip"].any() and not out["flip"].all() and (out["rot"] != 0).any()
    )
    for name in ("kp2d", "kp3d", "pose", "betas", "flip", "rot", "has_iuv", "has_smpl", "dp_points", "iuv"):
        assert torch.equal(cpu[name], out[name]), name  # made by the same CPU code, the IUV map included
    assert cpu["has_iuv"].sum() >= 10 and (cpu["iuv"][:, 0] > 0).sum() > 2000
    torch.testing.assert_close(out["iuv_onehot"], cpu["iuv_onehot"], atol=0, rtol=0)
    # bilinear: OpenCV's 1/32-pixel fixed point and uint8 rounding before the colour table, against floats
    diff = (cpu["image"].int() - out["image"].int()).abs()
    assert diff.float().mean() <= 0.5 and diff.max() <= 2  # measured 0.24 and 1


def test_the_deferred_batch_hands_over_the_small_iuv_map_and_one_stored_crop(toy):
    """The worker -> main hand-over is what limits 2-worker throughput: the IUV map travels at the loss's
    size, the image as the stored crop, nothing else at the crop's size."""
    _, deferred = _both_modes(toy)
    assert deferred["iuv"].shape == (24, 3, 56, 56) and deferred["iuv"].dtype == torch.uint8
    big = [k for k, v in deferred.items() if isinstance(v, torch.Tensor) and v.numel() > 24 * 3 * 56 * 56]
    assert big == ["crop"]


def test_bilinear_warp_and_gains_on_hand_computed_pixels():
    ramp = torch.arange(0, 80, 10, dtype=torch.uint8).repeat(3, 8, 1)[None]  # (1, 3, 8, 8): x * 10
    shift = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]], dtype=torch.float64)  # reads x + 0.5
    warped = T.warp_images_bilinear(ramp, shift, 8)
    torch.testing.assert_close(warped[0, 0, 3, :7], torch.arange(5.0, 75.0, 10.0))
    assert warped[0, 0, 3, 7] == pytest.approx(35.0)  # half of 70, half of the zero outside
    identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    torch.testing.assert_close(T.warp_images_bilinear(ramp, identity, 8), ramp.float(), atol=1e-3, rtol=0)
    pixels = torch.tensor([200.0, 101.0, 3.0]).reshape(1, 3, 1, 1)
    # 200 * 1.3 = 260 saturates, 101 * 0.5 = 50.5 rounds to even, 3 * 1.5 = 4.5 -> 4 (as colour_lut)
    assert T.apply_gains(pixels, torch.tensor([[1.3, 0.5, 1.5]])).flatten().tolist() == [255, 50, 4]


def test_cpu_batches_pass_through_and_bad_options_are_refused(toy):
    batch = next(iter(L.make_dataset([toy], batch_size=2, shuffle=False, flip_iuv_fn=fake_flip_iuv)))
    assert T.device_augment(batch, out_size=224) is batch
    with pytest.raises(ValueError, match="augment_on must be one of"):
        L.make_dataset([toy], augment_on="gpu")


@pytest.mark.slow
def test_a_short_training_run_with_device_augmentation_has_finite_losses(tmp_path, monkeypatch):
    import model.training.loop as loop
    from model.training.loop import Trainer
    from tests.fixtures_data.synth_chain import synth_shards
    from tests.test_train import tiny_config

    shards = synth_shards(tmp_path / "data", n=12, size=96, crop_size=96)
    cfg = tiny_config(shards, "data.augment_on=device", "run.steps=3", "run.checkpoint_every=3",
                      "optim.iuv_only_steps=1")  # fmt: skip
    seen = []

    def spy(batch, *args, **kwargs):
        seen.append("crop" in batch)
        return T.device_augment(batch, *args, **kwargs)

    monkeypatch.setattr(loop, "device_augment", spy)
    summary = Trainer(cfg, tmp_path / "run").run(progress=False)
    assert seen and all(seen)  # every step's batch came deferred and was warped in the step
    assert summary["steps"] == 3 and np.isfinite(summary["final_loss"]) and np.isfinite(summary["first_loss"])


def test_the_training_config_knob_defaults_to_cpu_and_names_a_bad_value():
    from model.training.config import load_train_config

    assert load_train_config(None).data.augment_on == "cpu"
    assert load_train_config(None, ["data.augment_on=device"]).data.augment_on == "device"
    with pytest.raises(ValueError, match=r"data\.augment_on: expected one of \['cpu', 'device'\]"):
        load_train_config(None, ["data.augment_on=gpu"])
