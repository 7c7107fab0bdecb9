"""Ingest of UP-3D's own files and of COCO / DensePose-COCO JSON through the checked-in manifests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.spatial.transform import Rotation

from pipeline.datasets.coco import COCO17_TO_SPIN24
from pipeline.datasets.ingest import ingest_dataset
from pipeline.datasets.schema import read_manifest
from pipeline.datasets.sources import load_source
from tests.fixtures_data import coco as coco_fx
from tests.fixtures_data import up3d as up3d_fx


def test_up3d_rows_and_rejects(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    folder = raw / "up3d" / "up-3d"
    folder.mkdir(parents=True)
    good = up3d_fx.write_sample(folder, "00000", seed=0)
    turned = up3d_fx.write_sample(folder, "00001", seed=1, rt=(0.0, 0.0, np.pi / 2))
    up3d_fx.write_sample(folder, "00002", seed=2, joints_shape=(5, 14))
    up3d_fx.write_sample(folder, "00003", seed=3)
    (folder / "00003_body.pkl").unlink()
    up3d_fx.write_split(folder, "trainval.txt", ["00000", "00001", "00002", "00003"])
    summary = ingest_dataset(load_source("up3d"), raw, tmp_path / "m")
    assert summary.rows == {"trainval": 2} and "test" in summary.skipped

    rows = read_manifest(tmp_path / "m" / "up3d" / "trainval.parquet").to_pylist()
    assert [r["sample_id"] for r in rows] == ["up3d_00000", "up3d_00001"]
    r0 = rows[0]
    assert r0["image_path"] == "up-3d/00000_image.png" and r0["gender"] == "n" and r0["has_smpl"]
    np.testing.assert_allclose(r0["pose"], good["body"]["pose"], rtol=1e-6)
    np.testing.assert_allclose(r0["betas"], good["body"]["betas"], rtol=1e-6)
    kp = np.reshape(r0["kp2d"], (24, 3))
    np.testing.assert_allclose(kp[:14], good["joints"].T, rtol=1e-6)
    assert kp[14:].sum() == 0
    vis = good["joints"][:2, good["joints"][2] > 0]  # box from visible joints only
    assert r0["scale"] == pytest.approx(1.2 * max(np.ptp(vis[0]), np.ptp(vis[1])) / 200, rel=1e-5)
    want = Rotation.from_rotvec([0, 0, np.pi / 2]) * Rotation.from_rotvec(turned["body"]["pose"][:3])
    assert (want.inv() * Rotation.from_rotvec(rows[1]["pose"][:3])).magnitude() < 1e-5

    rejects = pq.read_table(tmp_path / "m" / "up3d" / "rejects.parquet").to_pylist()
    assert {(r["sample_id"], r["field"]) for r in rejects} == {
        ("up3d_00002", "joints.npy"),
        ("up3d_00003", "body.pkl"),
    }


def test_densepose_coco_rows_points_masks_and_rejects(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    rng = np.random.default_rng(0)
    dense = coco_fx.dense_points(rng, 7)
    bbox = [10.0, 5.0, 40.0, 50.0]
    anns = [
        {
            "image_id": 1,
            "bbox": bbox,
            "keypoints": coco_fx.keypoints(rng),
            "segmentation": [[10, 5, 50, 5, 50, 55]],
            **dense,
        },
        {"image_id": 1, "bbox": [0.0, 0.0, 20.0, 30.0], "keypoints": coco_fx.keypoints(rng, visible=5)},
        {"image_id": 2, "bbox": [1.0, 1.0, 5.0, 5.0], "keypoints": [0.0] * 51},  # nothing labelled
        {"image_id": 2, "bbox": bbox, "keypoints": coco_fx.keypoints(rng), **dict(dense, dp_U=[0.5])},
        {"image_id": 3, "bbox": bbox, "keypoints": coco_fx.keypoints(rng)},  # image file absent
        {
            "image_id": 1,
            "bbox": bbox,
            "keypoints": coco_fx.keypoints(rng),
            "iscrowd": 1,
        },  # not a person sample
        {"image_id": 9, "bbox": bbox, "keypoints": coco_fx.keypoints(rng)},  # no such image record
    ]
    doc = coco_fx.write_coco(
        raw / "densepose_coco" / "densepose_coco_2014_minival.json", raw / "coco" / "val2014", anns
    )
    doc["images"].append({"id": 3, "file_name": "COCO_val2014_000000000003.jpg", "width": 80, "height": 60})
    (raw / "densepose_coco" / "densepose_coco_2014_minival.json").write_text(json.dumps(doc))

    summary = ingest_dataset(load_source("densepose_coco"), raw, tmp_path / "m")
    assert summary.rows == {"minival": 2}
    rows = read_manifest(tmp_path / "m" / "densepose_coco" / "minival.parquet").to_pylist()
    assert [r["sample_id"] for r in rows] == [
        "densepose_coco_000000000001_101",
        "densepose_coco_000000000001_102",
    ]
    r0, r1 = rows
    assert r0["image_path"] == "../coco/val2014/COCO_train2014_000000000001.jpg"
    assert r0["center"] == [30.0, 30.0] and r0["scale"] == pytest.approx(1.2 * 50 / 200)
    kp = np.reshape(r0["kp2d"], (24, 3))
    src = np.reshape(anns[0]["keypoints"], (17, 3))
    np.testing.assert_allclose(kp[list(COCO17_TO_SPIN24), :2], src[:, :2], rtol=1e-6)
    assert kp[list(COCO17_TO_SPIN24), 2].tolist() == [1.0] * 17 and kp[12:19, 2].sum() == 0
    assert np.reshape(r1["kp2d"], (24, 3))[:, 2].sum() == 5
    np.testing.assert_allclose(r0["dp_x"], 10 + np.array(dense["dp_x"]) / 256 * 40, rtol=1e-5)
    np.testing.assert_allclose(r0["dp_y"], 5 + np.array(dense["dp_y"]) / 256 * 50, rtol=1e-5)
    assert r0["dp_I"] == [int(v) for v in dense["dp_I"]]
    np.testing.assert_allclose(r0["dp_U"], dense["dp_U"], rtol=1e-6)
    mask = json.loads(r0["mask"])
    assert mask["bbox"] == bbox and mask["segmentation"] == [[10, 5, 50, 5, 50, 55]]
    assert mask["dp_masks"][0] == dense["dp_masks"][0] and mask["dp_masks"][1] is None
    assert r1["dp_x"] is None and json.loads(r1["mask"]) == {"bbox": [0.0, 0.0, 20.0, 30.0]}
    assert not r0["has_smpl"] and r0["gender"] == "n"

    rejects = pq.read_table(tmp_path / "m" / "densepose_coco" / "rejects.parquet").to_pylist()
    assert {(r["source_row"].split(":")[-1], r["field"]) for r in rejects} == {
        ("ann103", "keypoints"),
        ("ann104", "dp_x"),
        ("ann105", "image_path"),
        ("ann107", "image_id"),
    }
