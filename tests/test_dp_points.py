"""DensePose points through the pipeline: the real json layout in, shard members, augmentation, batches.

Oracles: hand-computed box-frame conversions, and the rendered IUV maps of the open body (a point must keep
sitting on the pixel of its own part and UV however the sample is cropped, turned, scaled or mirrored; a
mirrored sample must agree with rendering the mirrored pose).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from pipeline import dp_points as dp
from pipeline.augment import AugmentConfig, AugmentParams, augment_sample, crop_affine
from pipeline.body.constants import PART_FLIP, PART_TO_COARSE
from pipeline.crop import crop_transform, warp
from pipeline.datasets.coco import parse_coco_json
from pipeline.synth.densepose import coco_document, densepose_annotation


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


# ------------------------------------------------------------------------------------------ tables, members


def test_coarse_flip_swaps_sides_and_keeps_torso_and_head():
    # DensePose coarse labels: 1 torso, 2/3 right/left hand, 4/5 left/right foot, 6/7 upper leg R/L,
    # 8/9 lower leg R/L, 10/11 upper arm L/R, 12/13 lower arm L/R, 14 head
    assert dp.COARSE_FLIP == (0, 1, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 14)
    for fine in range(25):
        assert dp.COARSE_FLIP[PART_TO_COARSE[fine]] == PART_TO_COARSE[PART_FLIP[fine]]


def test_members_round_trip_and_bad_values_are_refused():
    points = np.array([[1.5, 2.0, 3, 0.25, 1.0], [0.0, 9.0, 24, 0.0, 0.5]], np.float32)
    np.testing.assert_array_equal(dp.decode_points(dp.encode_points(points)), points)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 1:3] = 14
    np.testing.assert_array_equal(dp.decode_mask(dp.encode_mask(mask)), mask)
    for bad, what in ((25, "part index"), (0, "part index")):
        with pytest.raises(ValueError, match=what):
            dp.validate_points(np.array([[0, 0, bad, 0.5, 0.5]], np.float32))
    with pytest.raises(ValueError, match="U or V"):
        dp.validate_points(np.array([[0, 0, 3, 1.5, 0.5]], np.float32))
    with pytest.raises(ValueError, match="label 15"):
        dp.decode_mask(cv2.imencode(".png", np.full((4, 4), 15, np.uint8))[1].tobytes())


# ------------------------------------------------------------------- the real json layout, by hand


def _hand_annotation() -> dict:
    box_mask = np.zeros((256, 256), np.uint8)
    box_mask[:, :128] = 1  # left half of the box: torso (coarse 1)
    head = np.zeros((256, 256), np.uint8)
    head[:64, 128:] = 1  # top right quarter: head (coarse 14)
    return {
        "image_id": 1,
        "bbox": [10.0, 20.0, 64.0, 128.0],
        "keypoints": [0.0] * 51,
        "dp_x": [0.0, 128.0, 256.0],
        "dp_y": [0.0, 64.0, 128.0],
        "dp_I": [1.0, 23.0, 2.0],
        "dp_U": [0.1, 0.5, 0.9],
        "dp_V": [0.2, 0.6, 1.0],
        "dp_masks": [_rle(box_mask)] + [[] for _ in range(12)] + [_rle(head)],
    }


def test_a_hand_made_densepose_coco_annotation_lands_where_computed_by_hand(tmp_path):
    images = [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 200}]
    path = tmp_path / "dp.json"
    path.write_text(json.dumps(coco_document(images, [_hand_annotation()])))
    block = parse_coco_json(path, "dpc", "imgs", "dp.json")
    row = {k: v[0] for k, v in block.extras.items()}
    # image x = 10 + dp_x / 256 * 64, y = 20 + dp_y / 256 * 128
    np.testing.assert_allclose(row["dp_x"], [10.0, 42.0, 74.0])
    np.testing.assert_allclose(row["dp_y"], [20.0, 52.0, 84.0])
    shift = np.array([[1.0, 0.0, -10.0], [0.0, 1.0, -20.0]])  # "crop" = the image shifted by the box corner
    points = dp.points_from_row(row, shift)
    np.testing.assert_allclose(points[:, :2], [[0, 0], [32, 32], [64, 64]])
    np.testing.assert_array_equal(points[:, 2], [1, 23, 2])
    np.testing.assert_allclose(points[:, 3:], [[0.1, 0.2], [0.5, 0.6], [0.9, 1.0]], atol=1e-6)
    mask = dp.mask_from_row(row, shift, 200)
    # box pixel (i, j) has its centre at crop ((j + 0.5) / 4, (i + 0.5) / 2): crop column c reads box column
    # 4c - 0.5, row r box row 2r - 0.5 (the half-way columns 32, 64 and rows 32, 128 are left out)
    assert (mask[:128, :32] == 1).all() and (mask[33:128, 33:64] == 0).all()
    assert (mask[:32, 33:64] == 14).all() and (mask[:, 65:] == 0).all() and (mask[129:] == 0).all()
    members = dp.shard_members(row, shift, 200)
    assert sorted(members) == ["dp.npy", "dpmask.png"]
    assert dp.shard_members({"dp_x": None, "mask": None}, shift, 200) == {}


# ------------------------------------------------------------------- rendered bodies as the oracle


def _render(pose: np.ndarray, tx: float, size: int) -> np.ndarray:
    from pipeline.body import load_body_model, load_dense_parts
    from pipeline.render import IUVRenderer, WeakPerspectiveCamera, encode_iuv

    body = load_body_model("anny-smpl24")
    renderer = IUVRenderer(load_dense_parts("anny-smpl24"))
    out = body(pose=torch.tensor(pose[None], dtype=torch.float32))
    vertices = out.vertices - out.joints[:, :1]  # root at the origin: the mirror is about x = 0
    camera = WeakPerspectiveCamera(torch.tensor([[0.8, tx, 0.1]]), crop_size=size)
    return encode_iuv(renderer.render(vertices, camera, size, size))[0].numpy()


def _facing_pose(rng) -> np.ndarray:
    pose = rng.normal(0, 0.25, 72)
    facing_camera = cv2.Rodrigues(np.array([np.pi, 0.0, 0.0]))[0]  # SMPL y-up -> camera y-down
    pose[:3] = cv2.Rodrigues(facing_camera @ cv2.Rodrigues(rng.normal(0, 0.3, 3))[0])[0].ravel()
    return pose


def _points_on(iuv: np.ndarray, rng, n: int = 300) -> np.ndarray:
    """Points at random foreground pixel centres of an IUV map, with that pixel's I, U, V."""
    rows, cols = np.nonzero(iuv[..., 0])
    pick = rng.choice(rows.size, n, replace=False)
    r, c = rows[pick], cols[pick]
    return np.c_[c, r, iuv[r, c, 0], iuv[r, c, 1] / 255.0, iuv[r, c, 2] / 255.0].astype(np.float32)


def _at(iuv: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The (N, 3) IUV codes at the points' nearest pixels."""
    c = np.clip(np.rint(points[:, 0]).astype(int), 0, iuv.shape[1] - 1)
    r = np.clip(np.rint(points[:, 1]).astype(int), 0, iuv.shape[0] - 1)
    return iuv[r, c].astype(int)


@pytest.fixture(scope="module")
def rendered():
    rng = np.random.default_rng(5)
    pose = _facing_pose(rng)
    size = 112
    iuv = _render(pose, 0.05, size)
    sample = {
        "key": "k",
        "image": iuv.copy(),
        "iuv": iuv,
        "kp2d": np.zeros((24, 3), np.float32),
        "kp3d": np.zeros((24, 4), np.float32),
        "smpl": np.r_[pose, np.zeros(10)].astype(np.float32),
        "margin": 1.0,
        "dp": _points_on(iuv, rng),
        "dpmask": np.asarray(PART_TO_COARSE, np.uint8)[iuv[..., 0]],
    }
    return sample, size


def test_flipped_points_agree_with_the_flipped_map_and_with_rendering_the_flipped_pose(rendered):
    sample, size = rendered
    cfg = AugmentConfig(out_size=size, iuv_size=size)
    flipped = augment_sample(sample, AugmentParams(flip=True), cfg)  # the built-in body's flip table
    points = flipped["dp"]
    assert len(points) == len(sample["dp"])  # a mirror keeps every point inside
    on_map = _at(flipped["iuv"], points)
    assert (on_map[:, 0] == points[:, 2]).mean() >= 0.98
    expect = _render(flipped["smpl"][:72].astype(np.float64), -0.05, size)
    on_render = _at(expect, points)
    same = on_render[:, 0] == points[:, 2]
    assert same.mean() >= 0.98
    uv_error = np.abs(on_render[same, 1:] - np.rint(points[same, 3:] * 255))
    assert np.median(uv_error) <= 2
    assert (points[:, 2] != sample["dp"][:, 2]).mean() > 0.3  # left and right parts really were swapped
    mask_same = flipped["dpmask"] == np.asarray(PART_TO_COARSE)[expect[..., 0]]
    fg = (flipped["dpmask"] > 0) | (expect[..., 0] > 0)
    assert mask_same[fg].mean() >= 0.98


@pytest.mark.parametrize("rot, scale, shift", [(25.0, 1.0, (0.0, 0.0)), (-40.0, 0.7, (0.1, -0.05)),
                                               (10.0, 1.3, (-0.1, 0.1))])  # fmt: skip
def test_points_stay_on_the_image_content_under_rotation_scale_and_shift(rendered, rot, scale, shift):
    sample, size = rendered
    cfg = AugmentConfig(out_size=96, iuv_size=96)
    params = AugmentParams(rot=rot, scale=scale, shift=shift)
    out = augment_sample(sample, params, cfg)
    points = out["dp"]
    # independent of augment_dp: every original point moved by the crop affine, kept if inside
    moved = dp.apply_affine(crop_affine(params, size, size, 96), sample["dp"][:, :2])
    inside = ((moved >= -0.5) & (moved < 95.5)).all(1)
    np.testing.assert_allclose(points[:, :2], moved[inside], atol=1e-4)
    if scale < 1:
        assert inside.sum() < len(sample["dp"])  # zoomed in: some points left the crop and were dropped
    # points away from part borders (their 5 x 5 source pixels one part) must sit on their part
    part = sample["iuv"][..., 0]
    ring = cv2.dilate(part, np.ones((5, 5), np.uint8)) == cv2.erode(part, np.ones((5, 5), np.uint8))
    interior = ring[sample["dp"][:, 1].astype(int), sample["dp"][:, 0].astype(int)][inside]
    assert interior.sum() > 50
    on_image = _at(out["image"], points)  # the image is the IUV map itself, warped bilinearly
    on_map = _at(out["iuv"], points)
    assert (on_map[interior, 0] == points[interior, 2]).mean() >= 0.99
    assert (on_image[interior, 0] == points[interior, 2]).mean() >= 0.98
    assert (on_map[:, 0] == points[:, 2]).mean() >= 0.85  # all points: borders blur when resampled
    coarse = np.asarray(PART_TO_COARSE)[out["iuv"][..., 0]]
    assert (out["dpmask"] == coarse).mean() >= 0.99


def test_batches_pad_points_with_a_count():
    a = {"dp": np.ones((3, 5), np.float32), "dpmask": np.ones((4, 4), np.uint8)}
    b = {"dp": None, "dpmask": None}
    c = {"dp": np.zeros((0, 5), np.float32), "dpmask": None}
    batch = dp.collate_dp([a, b, c], 4)
    assert batch["dp_points"].shape == (3, 3, 5)
    assert batch["dp_count"].tolist() == [3, 0, 0]
    assert batch["has_dp"].tolist() == [True, False, True]
    assert batch["has_dpmask"].tolist() == [True, False, False]
    assert batch["dp_points"][1:].abs().sum() == 0
    assert dp.collate_dp([b, b], 4)["dp_points"].shape == (2, 1, 5)


# ------------------------------------------------------------------- the synthetic emitter + the COCO reader


def test_synthetic_annotations_in_the_coco_layout_ingest_to_the_same_points(tmp_path):
    from pipeline.body import load_body_model, load_dense_parts
    from pipeline.render import IUVRenderer
    from pipeline.render.cameras import PerspectiveCamera
    from pipeline.synth.scene import render_scene_batch

    body, parts = load_body_model("anny-smpl24"), load_dense_parts("anny-smpl24")
    size, count = 128, 3
    scene = render_scene_batch(body, parts, 7, count, size=size, backend="torch")
    ann = scene.annotations
    posed = body(betas=torch.as_tensor(ann["shape"]), pose=torch.as_tensor(ann["pose"]))
    k = np.tile(np.eye(3), (count, 1, 1))
    k[:, 0, 0] = k[:, 1, 1] = ann["focal_length"]
    k[:, :2, 2] = size / 2
    camera = PerspectiveCamera(torch.as_tensor(k).float(), torch.eye(3).repeat(count, 1, 1),
                               torch.as_tensor(ann["cam_t"]).float())  # fmt: skip
    iuv = IUVRenderer(parts, backend="torch").render_encoded(posed.vertices, camera, size, size).numpy()
    rng = np.random.default_rng(0)
    anns = [{"image_id": i + 1, **densepose_annotation(iuv[i], ann["part"][i], rng)} for i in range(count)]
    images = [{"id": i + 1, "file_name": f"{i}.jpg", "width": size, "height": size} for i in range(count)]
    path = tmp_path / "densepose_train.json"
    path.write_text(json.dumps(coco_document(images, anns)))
    doc = json.loads(path.read_text())
    assert {"dp_x", "dp_y", "dp_I", "dp_U", "dp_V", "dp_masks", "bbox", "keypoints"} <= set(
        doc["annotations"][0]
    )
    assert len(doc["annotations"][0]["dp_masks"]) == 14
    assert all(0 <= v <= 256 for a in doc["annotations"] for v in a["dp_x"] + a["dp_y"])
    block = parse_coco_json(path, "synth_dp", ".", path.name)
    for i in range(count):
        row = {key: values[i] for key, values in block.extras.items()}
        row_xy = np.c_[row["dp_x"], row["dp_y"]]
        codes = _at(iuv[i], row_xy)  # ingested points sit on pixels of their own part and UV
        assert (codes[:, 0] == np.asarray(row["dp_I"])).all()
        assert np.abs(codes[:, 1] - np.rint(np.asarray(row["dp_U"]) * 255)).max() <= 1e-6 + 0.5
        matrix = crop_transform(block.center[i], float(block.scale[i]), 192, 1.2)
        assert matrix[0, 0] >= 1.0  # the crop magnifies: every source pixel keeps a crop pixel of its own
        members = dp.shard_members(row, matrix, 192)
        points = dp.decode_points(members["dp.npy"])
        crop_iuv = warp(iuv[i], matrix, 192, nearest=True)
        assert (_at(crop_iuv, points)[:, 0] == points[:, 2]).mean() >= 0.98
        mask = dp.decode_mask(members["dpmask.png"])
        coarse = np.asarray(PART_TO_COARSE)[crop_iuv[..., 0]]
        fg = (mask > 0) | (coarse > 0)
        assert (mask == coarse)[fg].mean() >= 0.95  # the masks went through the 256 x 256 box frame


def test_the_densepose_flag_leaves_the_synthetic_images_and_annotations_unchanged(tmp_path):
    from stages import synthesize

    common = ["--n", "4", "--size", "64", "--seed", "2", "--no-progress", "--backend", "torch"]
    synthesize.main(["--out", str(tmp_path / "plain"), *common])
    synthesize.main(["--out", str(tmp_path / "dp"), *common, "--densepose"])
    plain = sorted(p.relative_to(tmp_path / "plain") for p in (tmp_path / "plain").rglob("*") if p.is_file())
    extra = sorted(p.relative_to(tmp_path / "dp") for p in (tmp_path / "dp").rglob("*") if p.is_file())
    assert sorted(set(extra) - set(plain)) == [Path("densepose_train.json"), Path("densepose_val.json")]
    for rel in plain:
        assert (tmp_path / "plain" / rel).read_bytes() == (tmp_path / "dp" / rel).read_bytes(), rel
    doc = json.loads((tmp_path / "dp" / "densepose_train.json").read_text())
    assert len(doc["images"]) == 3 and all(len(a["dp_x"]) == 100 for a in doc["annotations"])


def test_verify_reports_a_damaged_point_member_by_key(tmp_path):
    from pipeline.shards import check_tar_members, write_tar

    good = dp.encode_points(np.array([[1, 2, 3, 0.5, 0.5]], np.float32))
    bad = good[:-4] + np.float32(7.0).tobytes()  # the last value, V, becomes 7
    path = tmp_path / "s.tar"
    write_tar(path, [("a", {"dp.npy": good}), ("b", {"dp.npy": bad})])
    count, problems = check_tar_members(path)
    assert count == 2 and [k for k, _ in problems] == ["b"] and "U or V" in problems[0][1]


def test_a_row_with_bad_densepose_values_is_rejected_naming_the_field(tmp_path):
    from pipeline.shard_build import ShardParams, prepare_rows

    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((40, 40, 3), np.uint8))
    base = {"sample_id": "s1", "image_path": "a.jpg", "center": [20.0, 20.0], "scale": 0.2,
            "kp2d": [0.0] * 72, "has_smpl": False, "has_kp3d": False, "mask": None,
            "dp_x": [5.0], "dp_y": [5.0], "dp_I": [3], "dp_U": [0.5], "dp_V": [0.5]}  # fmt: skip
    bad_uv = dict(base, sample_id="s2", dp_U=[1.5])
    bad_mask = dict(base, sample_id="s3", mask=json.dumps({"bbox": [0, 0, 9, 9], "dp_masks": [None] * 3}))
    kept, rejects = prepare_rows([base, bad_uv, bad_mask], tmp_path, ShardParams("t", "train", crop_size=32))
    assert [r["sample_id"] for r, _, _ in kept] == ["s1"]
    assert [r["key"] for r in rejects] == ["s2", "s3"]
    assert "dp_U" in rejects[0]["reason"] and "U or V" in rejects[0]["reason"]
    assert "field mask" in rejects[1]["reason"] and "3 entries" in rejects[1]["reason"]
