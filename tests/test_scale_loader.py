"""The loader's fast paths give the same bytes as the plain ones they replaced (the demo's data must not move)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from pipeline import loader as L
from pipeline.augment import AugmentConfig, AugmentParams, augment_sample, colour_lut, sample_params


def _every_value_image(rng: np.random.Generator, size: int = 224) -> np.ndarray:
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    image.reshape(-1, 3)[:256] = np.arange(256, dtype=np.uint8)[:, None]  # every value in every channel
    return image


def test_colour_lut_equals_the_saturating_multiply_on_every_value():
    rng = np.random.default_rng(0)
    image = _every_value_image(rng)
    gains = [tuple(rng.uniform(0.6, 1.4, 3)) for _ in range(200)] + [(1.5, 0.5, 1.25), (0.6, 1.4, 1.0)]
    for gain in gains:
        expect = cv2.multiply(image, (*gain, 0.0), dtype=cv2.CV_8U)
        np.testing.assert_array_equal(cv2.LUT(image, colour_lut(gain)), expect, err_msg=str(gain))
    # hand-computed: 200 * 1.3 = 260 saturates, 101 * 0.5 = 50.5 rounds to even, 3 * 1.5 = 4.5 -> 4
    lut = colour_lut((1.3, 0.5, 1.5))
    assert lut[0, 200, 0] == 255 and lut[0, 101, 1] == 50 and lut[0, 3, 2] == 4 and lut[0, 0, 0] == 0


def test_augmented_image_is_the_multiply_of_the_uncoloured_warp():
    rng = np.random.default_rng(1)
    cfg = AugmentConfig()
    sample = {"key": "k", "image": _every_value_image(rng, 256), "iuv": None, "margin": 1.2,
              "kp2d": np.zeros((24, 3), np.float32), "kp3d": np.zeros((24, 4), np.float32),
              "smpl": np.zeros(82, np.float32)}  # fmt: skip
    for _ in range(20):
        p = sample_params(rng, cfg)
        plain = augment_sample(sample, AugmentParams(p.flip, p.rot, p.scale, p.shift), cfg)["image"]
        got = augment_sample(sample, p, cfg)["image"]
        np.testing.assert_array_equal(got, cv2.multiply(plain, (*p.colour, 0.0), dtype=cv2.CV_8U))


def test_collate_lays_out_images_and_maps_as_a_plain_transpose():
    rng = np.random.default_rng(2)
    samples = [
        {"key": f"k{i}", "dataset": "d", "image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
         "iuv": None if i == 1 else rng.integers(0, 25, (8, 8, 3), dtype=np.uint8),
         "kp2d": np.zeros((24, 3), np.float32), "kp3d": np.zeros((24, 4), np.float32),
         "smpl": np.zeros(82, np.float32), "has_smpl": True, "has_kp3d": False}
        for i in range(3)
    ]  # fmt: skip
    batch = L.collate(samples, iuv_size=8)
    for i, s in enumerate(samples):
        assert torch.equal(batch["image"][i], torch.from_numpy(s["image"].transpose(2, 0, 1).copy()))
        if s["iuv"] is None:
            assert not batch["has_iuv"][i] and not batch["iuv"][i].any()
        else:
            assert torch.equal(batch["iuv"][i], torch.from_numpy(s["iuv"].transpose(2, 0, 1).copy()))
    samples[2]["image"] = samples[2]["image"][:16]
    with pytest.raises(ValueError, match="does not fit"):
        L.collate(samples, iuv_size=8)


def test_png_zlib_path_gives_libpngs_array_and_leaves_other_pngs_to_opencv():
    from pipeline import shards as fmt

    def libpng(data: bytes) -> np.ndarray:
        return cv2.cvtColor(
            cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB
        )

    rng = np.random.default_rng(3)
    flat = np.zeros((256, 256, 3), np.uint8)
    flat[40:90, 100:180] = (7, 12, 250)
    maps = [flat, rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), np.zeros((1, 1, 3), np.uint8)]
    for iuv in maps:
        data = fmt.encode_png(iuv)
        assert fmt._unfiltered_rgb_png(data) is not None  # what encode_png writes takes the zlib path
        got = fmt.decode_png(data)
        np.testing.assert_array_equal(got, iuv)
        np.testing.assert_array_equal(got, libpng(data))
        assert got.flags.writeable and got.flags.c_contiguous
    # libpng's adaptive filters (OpenCV's default encoding) or another colour type: OpenCV decodes them
    filtered = cv2.imencode(".png", np.ascontiguousarray(maps[1][..., ::-1]))[1].tobytes()
    assert fmt._unfiltered_rgb_png(filtered) is None
    np.testing.assert_array_equal(fmt.decode_png(filtered), maps[1])
    grey = cv2.imencode(".png", maps[1][..., 0])[1].tobytes()
    assert fmt._unfiltered_rgb_png(grey) is None
    with pytest.raises(ValueError, match="3-channel"):
        fmt.decode_png(grey)
    cut = fmt.encode_png(flat)
    with pytest.raises(ValueError):
        fmt.decode_png(cut[: len(cut) // 2])


@pytest.mark.slow
def test_loader_bench_reports_both_modes_in_one_run(capsys):
    from bench.loader import main

    result = main(["--rows", "64", "--batch-size", "16", "--shard-size", "32", "--repeats", "1"])
    assert json.loads(capsys.readouterr().out) == result
    for workers in (0, 1, 2):
        assert result[f"loader_{workers}_workers_augment_on_device_per_s"] > 0
        assert result[f"loader_{workers}_workers_onehot_in_worker_per_s"] > 0
    device, cpu = result["device_mode_cpu_ms_per_sample"], result["cpu_ms_per_sample"]
    # the workers' share with augment_on=device is the decode plus the small arrays: below the CPU path's
    assert device["decode_and_geometry"] < cpu["decode_and_augment"]
    assert device["device_augment_cpu_torch"] > 0
    assert set(result["augment_on_device"]["targets_met"]) == set(result["targets"])
    handover = result["worker_handover_cpu_ms_per_sample"]
    assert set(handover) == {"fresh", "pooled"} and set(handover["fresh"]) == set(handover["pooled"])
