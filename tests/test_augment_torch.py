"""Augmentation on the training device (pipeline.augment_torch, data.augment_on=device) against the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline import augment_torch as T
from pipeline import loader as L
from pipeline.augment import AugmentConfig, AugmentParams, augment_sample
from pipeline.body.constants import DENSEPOSE_PART_NAMES
from tests.test_shards_helpers import build_shards, fake_flip_iuv

LEFT_HAND = DENSEPOSE_PART_NAMES.index("left_hand")
RIGHT_HAND = DENSEPOSE_PART_NAMES.index("right_hand")


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
    out = T.device_augment(deferred, T.flip_tables_for(fake_flip_iuv), out_size=224, iuv_size=56, onehot=True)
    assert (
        cpu["key"] == out["key"] and out["flip"].any() and not out["flip"].all() and (out["rot"] != 0).any()
    )
    for name in ("kp2d", "kp3d", "pose", "betas", "flip", "rot", "has_iuv", "has_smpl", "dp_points"):
        assert torch.equal(cpu[name], out[name]), name  # the labels are made by the same CPU code
    has = cpu["has_iuv"]
    assert has.sum() >= 10
    same = (cpu["iuv"] == out["iuv"]).all(1)[has]
    # nearest sampling at the same affines: only a coordinate at a half pixel could round otherwise
    # (measured: every pixel equal with OpenCV 5.1)
    assert same.float().mean() >= 0.999
    fg = cpu["iuv"][has][:, 0] > 0
    assert fg.sum() > 2000 and torch.equal(cpu["iuv"][has][:, 0][same], out["iuv"][has][:, 0][same])
    torch.testing.assert_close(out["iuv_onehot"][has], cpu["iuv_onehot"][has], atol=0, rtol=0)
    # bilinear: OpenCV's 1/32-pixel fixed point and uint8 rounding before the colour table, against floats
    diff = (cpu["image"].int() - out["image"].int()).abs()
    assert diff.float().mean() <= 0.5 and diff.max() <= 2  # measured 0.24 and 1


def test_a_left_hand_becomes_only_a_right_hand_on_the_mirrored_side():
    """Hand-made oracle with the built-in body's real flip tables: part 4 -> part 3, columns mirrored."""
    size = 64
    iuv = np.zeros((size, size, 3), np.uint8)
    iuv[10:30, 5:20] = (LEFT_HAND, 100, 200)
    sample = {"key": "k", "dataset": "d", "image": np.zeros((size, size, 3), np.uint8), "iuv": iuv,
              "kp2d": np.zeros((24, 3), np.float32), "kp3d": np.zeros((24, 4), np.float32),
              "smpl": np.zeros(82, np.float32), "has_smpl": False, "has_kp3d": False,
              "margin": 1.0}  # fmt: skip
    cfg = AugmentConfig(out_size=size, iuv_size=size)
    samples = [augment_sample(sample, AugmentParams(flip=f), cfg, pixels=False) for f in (True, False)]
    out = T.device_augment(L.collate(samples, size, deferred=True), out_size=size, iuv_size=size)
    flipped, plain = out["iuv"][0], out["iuv"][1]
    assert set(flipped[0].unique().tolist()) == {0, RIGHT_HAND}
    assert torch.equal(flipped[0] > 0, torch.from_numpy(iuv[:, ::-1, 0].copy() > 0))  # columns 44..58
    assert torch.equal(plain, torch.from_numpy(iuv.transpose(2, 0, 1).copy()))  # identity geometry
    # the same flip as the CPU path's pipeline.render.flip.flip_iuv with the same table
    expect = augment_sample(sample, AugmentParams(flip=True), cfg)["iuv"]
    assert torch.equal(flipped, torch.from_numpy(expect.transpose(2, 0, 1).copy()))


def test_relabel_equals_flip_iuv_of_the_builtin_body_on_random_maps():
    from pipeline.augment import default_flip_iuv

    rng = np.random.default_rng(3)
    maps = np.stack([rng.integers(0, 25, (4, 17, 13)), *rng.integers(0, 256, (2, 4, 17, 13))], -1)
    maps = (maps * (maps[..., :1] > 0)).astype(np.uint8)
    expect = default_flip_iuv(maps)  # numpy: mirror, part table, UV look-up
    mirrored = torch.from_numpy(maps[:, :, ::-1].transpose(0, 3, 1, 2).copy())
    got = T.relabel_mirrored(mirrored, T.default_flip_tables())
    assert torch.equal(got, torch.from_numpy(expect.transpose(0, 3, 1, 2).copy()))


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


def test_nearest_warp_reads_zero_outside_and_rounds_to_the_nearest_pixel():
    codes = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4) + 1
    shift = torch.tensor([[[1.0, 0.0, 1.4], [0.0, 1.0, -0.6]]], dtype=torch.float64)  # x + 1.4, y - 0.6
    out = T.warp_codes_nearest(codes, shift, 4)[0, 0]
    assert out[0].tolist() == [0, 0, 0, 0]  # y - 0.6 rounds to -1 on the first row: outside
    assert out[1].tolist() == [2, 3, 4, 0]  # row 0, x + 1 (x = 3 reads column 4: outside)


def test_tabulating_a_flip_function_checks_that_it_is_per_pixel():
    tables = T.flip_tables_for(fake_flip_iuv)
    assert tables.part_flip[1].item() == 6 and tables.part_flip[0].item() == 0  # SPIN 0 <-> 5, I = joint + 1
    with pytest.raises(ValueError, match="not a column mirror"):
        T.tabulate_flip_fn(lambda iuv: fake_flip_iuv(iuv)[:, ::-1])  # relabels, no mirror
    with pytest.raises(ValueError, match="part 1 to parts"):
        T.tabulate_flip_fn(lambda iuv: iuv * 0)


def test_cpu_batches_pass_through_and_bad_options_are_refused(toy):
    batch = next(iter(L.make_dataset([toy], batch_size=2, shuffle=False, flip_iuv_fn=fake_flip_iuv)))
    assert T.device_augment(batch, out_size=224, iuv_size=56) is batch
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
