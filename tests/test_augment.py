"""Augmentation: flips are involutions, 2D and 3D stay consistent, keypoints stay on the rendered body."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.augment import (
    AugmentConfig,
    AugmentParams,
    augment_sample,
    flip_pose,
    rotate_pose,
    rotation_z,
    sample_params,
)
from pipeline.loader import decode_sample
from tests.test_shards_helpers import build_shards, fake_flip_iuv


def _identity_sample(rng, size=64):
    """A sample whose stored crop already has the output size, so the geometry alone is exact."""
    iuv = np.zeros((size, size, 3), np.uint8)
    iuv[10:30, 5:20] = (3, 100, 200)
    return {
        "key": "k",
        "image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
        "iuv": iuv,
        "kp2d": np.c_[rng.uniform(0, size - 1, (24, 2)), np.ones(24)].astype(np.float32),
        "kp3d": np.c_[rng.normal(size=(24, 3)), np.ones(24)].astype(np.float32),
        "smpl": rng.normal(0, 0.5, 82).astype(np.float32),
        "margin": 1.0,
    }


def test_flipping_twice_is_the_identity():
    rng = np.random.default_rng(0)
    sample = _identity_sample(rng)
    cfg = AugmentConfig(out_size=64, iuv_size=64)
    flip = AugmentParams(flip=True)
    once = augment_sample(sample, flip, cfg, fake_flip_iuv)
    twice = augment_sample(once, flip, cfg, fake_flip_iuv)
    assert not np.array_equal(once["image"], sample["image"])
    np.testing.assert_array_equal(once["image"], sample["image"][:, ::-1])
    np.testing.assert_array_equal(twice["image"], sample["image"])
    np.testing.assert_array_equal(twice["iuv"], sample["iuv"])
    np.testing.assert_allclose(twice["kp2d"], sample["kp2d"], atol=1e-4)
    np.testing.assert_allclose(twice["kp3d"], sample["kp3d"], atol=1e-6)
    np.testing.assert_allclose(twice["smpl"], sample["smpl"], atol=1e-6)
    # a flip sends the right ankle (SPIN 0) to where the mirrored left ankle (SPIN 5) was
    np.testing.assert_allclose(once["kp2d"][0, 0], 63 - sample["kp2d"][5, 0], atol=1e-4)


def test_pose_flip_and_rotation_act_on_the_root_rotation():
    rng = np.random.default_rng(1)
    pose = rng.normal(0, 0.6, 72)
    root = cv2.Rodrigues(pose[:3])[0]
    mirror = np.diag([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(cv2.Rodrigues(flip_pose(pose)[:3])[0], mirror @ root @ mirror, atol=1e-9)
    turned = cv2.Rodrigues(rotate_pose(pose, 35.0)[:3])[0]
    np.testing.assert_allclose(turned, rotation_z(35) @ root, atol=1e-9)
    np.testing.assert_allclose(rotate_pose(pose, 35.0)[3:], pose[3:])
    # the left knee's rotation becomes the (mirrored) right knee's
    np.testing.assert_allclose(flip_pose(pose).reshape(24, 3)[5], pose.reshape(24, 3)[4] * [1, -1, -1])


@pytest.mark.parametrize("params", [AugmentParams(rot=30.0), AugmentParams(flip=True, rot=-50.0, scale=1.2),
                                    AugmentParams(flip=True, shift=(0.1, -0.05))])  # fmt: skip
def test_2d_keypoints_stay_the_projection_of_the_3d_joints(params):
    """Project kp3d with a camera centred on the crop; after augmenting, the same holds in the output."""
    rng = np.random.default_rng(2)
    size, margin, f = 80, 1.25, 300.0
    joints = np.c_[rng.normal(0, 0.3, (24, 2)), rng.uniform(4.5, 5.5, 24)]

    def project(j, focal, centre):
        return focal * j[:, :2] / j[:, 2:3] + centre

    sample = _identity_sample(rng, size)
    sample.update(margin=margin, kp3d=np.c_[joints, np.ones(24)].astype(np.float32))
    sample["kp2d"] = np.c_[project(joints, f, (size - 1) / 2), np.ones(24)].astype(np.float32)
    cfg = AugmentConfig(out_size=64, iuv_size=16)
    out = augment_sample(sample, params, cfg, fake_flip_iuv)
    box = size / margin * params.scale
    # the output camera: focal scaled by out/box, principal point at the output centre (moved by a shift)
    if params.shift == (0.0, 0.0):
        expect = project(out["kp3d"].astype(np.float64), f * cfg.out_size / box, (cfg.out_size - 1) / 2)
        np.testing.assert_allclose(out["kp2d"][:, :2], expect, atol=1e-3)
    else:  # a shift only moves the principal point: the offsets between joints still agree
        expect = project(out["kp3d"].astype(np.float64), f * cfg.out_size / box, 0.0)
        got = out["kp2d"][:, :2]
        np.testing.assert_allclose(got - got[0], expect - expect[0], atol=1e-3)


def test_keypoints_land_on_the_rendered_foreground_after_every_augmentation(tmp_path):
    import tarfile

    folder = build_shards(tmp_path, 12, shard_size=12, crop_size=128)
    with tarfile.open(folder / "toy-train-000000.tar") as tar:
        raw: dict[str, dict] = {}
        for info in tar:
            key, _, ext = info.name.partition(".")
            raw.setdefault(key, {"__key__": key})[ext] = tar.extractfile(info).read()
    samples = [decode_sample(r) for r in raw.values() if "iuv.png" in r]
    cfg = AugmentConfig()
    rng = np.random.default_rng(3)
    checked = same_part = 0
    for sample in samples:
        for _ in range(8):
            params = sample_params(rng, cfg)
            out = augment_sample(sample, params, cfg, fake_flip_iuv)
            k = cfg.iuv_size / cfg.out_size
            for j, (x, y, vis) in enumerate(out["kp2d"]):
                u, v = int(round((x + 0.5) * k - 0.5)), int(round((y + 0.5) * k - 0.5))
                if vis > 0 and 0 <= u < cfg.iuv_size and 0 <= v < cfg.iuv_size:
                    part = out["iuv"][v, u, 0]
                    assert part > 0, f"{sample['key']} joint {j} off the foreground with {params}"
                    checked += 1
                    same_part += part == j + 1
    assert checked > 500
    assert same_part / checked > 0.6  # disks overlap, but mostly a joint sits on its own (flipped) disk


def test_disabled_augmentation_is_a_plain_centre_crop():
    rng = np.random.default_rng(4)
    cfg = AugmentConfig(enabled=False)
    assert sample_params(rng, cfg) == AugmentParams()
    sample = _identity_sample(rng, 224)
    out = augment_sample(sample, sample_params(rng, cfg), cfg)  # no flip: the IUV flip is never needed
    np.testing.assert_array_equal(out["image"], sample["image"])
    assert out["iuv"].shape == (56, 56, 3)


def test_flipped_iuv_matches_rendering_the_flipped_pose():
    """Real body and renderer: mirror(render(pose)) == render(flip_pose(pose)) on >= 98% of the foreground."""
    torch = pytest.importorskip("torch")
    from pipeline.body import load_body_model, load_dense_parts
    from pipeline.render import IUVRenderer, WeakPerspectiveCamera, encode_iuv

    body = load_body_model("anny-smpl24")
    renderer = IUVRenderer(load_dense_parts("anny-smpl24"))
    rng = np.random.default_rng(5)
    pose = rng.normal(0, 0.25, 72)
    facing_camera = cv2.Rodrigues(np.array([np.pi, 0.0, 0.0]))[0]  # SMPL y-up -> camera y-down
    pose[:3] = cv2.Rodrigues(facing_camera @ cv2.Rodrigues(rng.normal(0, 0.3, 3))[0])[0].ravel()

    def render(p: np.ndarray, tx: float) -> np.ndarray:
        out = body(pose=torch.tensor(p[None], dtype=torch.float32))
        vertices = out.vertices - out.joints[:, :1]  # root at the origin, so the mirror is about x = 0
        camera = WeakPerspectiveCamera(torch.tensor([[0.8, tx, 0.1]]), crop_size=112)
        return encode_iuv(renderer.render(vertices, camera, 112, 112))[0].numpy()

    sample = _identity_sample(rng, 112)
    sample.update(iuv=render(pose, 0.05), smpl=np.r_[pose, np.zeros(10)].astype(np.float32))
    cfg = AugmentConfig(out_size=112, iuv_size=112)
    flipped = augment_sample(sample, AugmentParams(flip=True), cfg)  # default flip: the built-in body's table
    expect = render(flipped["smpl"][:72].astype(np.float64), -0.05)
    fg = (flipped["iuv"][..., 0] > 0) | (expect[..., 0] > 0)
    same = flipped["iuv"][..., 0] == expect[..., 0]
    assert fg.sum() > 500 and same[fg].mean() >= 0.98
    uv_error = np.abs(flipped["iuv"][..., 1:].astype(int) - expect[..., 1:])[same & fg]
    assert np.median(uv_error) <= 2
