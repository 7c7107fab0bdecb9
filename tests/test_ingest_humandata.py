"""Ingest of mmhuman3d HumanData .npz files (``format: humandata``), fixtures in exactly HumanData's layout.

Oracles: hand-written source indices of named joints (from mmhuman3d's convention tables), the project's
own COCO-17 and OpenPose-18 tables written independently for the COCO and 3DPW readers, hand-computed boxes.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.datasets.coco import COCO17_TO_SPIN24
from pipeline.datasets.ingest import ingest_dataset
from pipeline.datasets.keypoint_names import spin24_sources
from pipeline.datasets.pw3d import OPENPOSE18_TO_SPIN24
from pipeline.datasets.schema import read_manifest
from pipeline.datasets.sources import load_source, load_source_file
from pipeline.safe_pickle import load_npz
from tests.fixtures_data.humandata import dump_humandata, indexed_keypoints
from tests.fixtures_data.images import write_image

# human_data (190 joints) index of a few named joints -> the SPIN-24 joint it must land on.
HUMAN_DATA_TO_SPIN = {
    8: 0,  # right_ankle
    5: 1,  # right_knee
    144: 2,  # right_hip_extra (LSP hip), not SMPL's right_hip (index 2)
    4: 4,  # left_knee
    147: 13,  # headtop
    152: 18,  # head_extra
    55: 19,  # nose
    59: 22,  # left_ear
}
# h36m (17 joints) index -> SPIN-24 joint.
H36M_TO_SPIN = {0: 14, 3: 5, 6: 0, 7: 16, 8: 12, 9: 18, 10: 13, 16: 6}


def _source(tmp_path: Path, name: str, splits: dict[str, str], image_root: str = ".") -> object:
    lines = [
        f"name: {name}",
        "title: test",
        "licence: test",
        "licence_url: null",
        "login_required: false",
        "files: []",
        "ingest:",
        "  splits:",
    ]
    for split, npz in splits.items():
        lines += [
            f"    - split: {split}",
            "      format: humandata",
            f"      annotations: {npz}",
            f"      image_root: {image_root}",
        ]
    path = tmp_path / "sources" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return load_source_file(path)


def _smpl(n: int, rng: np.random.Generator, body_shape=(23, 3)) -> dict:
    return {
        "global_orient": rng.normal(0, 0.3, (n, 3)),
        "body_pose": rng.normal(0, 0.3, (n, *body_shape)),
        "betas": rng.normal(0, 1, (n, 10)),
        "transl": rng.normal(0, 1, (n, 3)),
    }


def _human_data_file(n: int = 3) -> dict:
    mask = np.zeros(190, np.uint8)
    mask[[*HUMAN_DATA_TO_SPIN, 2]] = 1  # SMPL's right_hip is present too, and must not be taken as SPIN's
    kp2d = indexed_keypoints(n, 190, 3)
    kp2d[1, 55, 2] = 0.5  # a half-confident nose
    kp2d[-1, 4, 2] = 3.0  # a confidence above 1 is clipped (last row)
    kp2d[:, 7, :2] = np.nan  # left_ankle is masked out; whatever it holds must not reject the row
    return {
        "image_path": [
            f"S1/images/S1_Directions_1.54138969/S1_Directions_1.54138969_{i + 1:06d}.jpg" for i in range(n)
        ],
        "bbox_xywh": np.array([[10.0, 20.0, 30.0, 40.0, 1.0]] * n),
        "keypoints2d": kp2d,
        "keypoints2d_mask": mask,
        "keypoints3d": indexed_keypoints(n, 190, 4),
        "keypoints3d_mask": mask,
        "config": "h36m",
        "smpl": _smpl(n, np.random.default_rng(0)),
        "meta": {"gender": np.array(["m", "female", "x"])[:n]},
    }


@pytest.mark.parametrize("compressed", [False, True], ids=["full", "compressed"])
def test_human_data_convention_lands_on_named_spin_joints(tmp_path: Path, compressed: bool) -> None:
    raw, out = tmp_path / "raw", tmp_path / "m"
    data = _human_data_file()
    dump_humandata(raw / "hd" / "h36m_train.npz", data, compressed=compressed)
    source = _source(tmp_path, "hd", {"train": "hd/h36m_train.npz"})
    summary = ingest_dataset(source, raw, out, check_images=False)
    assert summary.rows == {"train": 3}
    rows = read_manifest(out / "hd" / "train.parquet").to_pylist()

    want_vis = np.zeros(24)
    want_vis[list(HUMAN_DATA_TO_SPIN.values())] = 1.0
    for i, row in enumerate(rows):
        kp = np.reshape(row["kp2d"], (24, 3))
        for src, spin in HUMAN_DATA_TO_SPIN.items():
            assert kp[spin, 0] == src and kp[spin, 1] == 100 * i + src, (src, spin)
        vis = want_vis.copy()
        if i == 1:
            vis[19] = 0.5
        np.testing.assert_allclose(kp[:, 2], vis)  # masked-out joints (e.g. left_ankle) are invisible
        assert kp[5].tolist() == [0.0, 0.0, 0.0]  # SPIN 5 = left_ankle: absent, all zeros
        kp3 = np.reshape(row["kp3d"], (24, 4))
        assert kp3[13, 0] == 147 and kp3[13, 2] == pytest.approx(-1.47) and kp3[5, 3] == 0.0
    r0 = rows[0]
    assert r0["has_kp3d"] and r0["has_smpl"]
    assert r0["center"] == [25.0, 40.0] and r0["scale"] == pytest.approx(40 / 200)  # max(w, h) / 200
    np.testing.assert_allclose(r0["pose"][:3], data["smpl"]["global_orient"][0], rtol=1e-6)
    np.testing.assert_allclose(r0["pose"][3:], data["smpl"]["body_pose"][0].reshape(69), rtol=1e-6)
    np.testing.assert_allclose(r0["betas"], data["smpl"]["betas"][0], rtol=1e-6)
    assert [r["gender"] for r in rows] == ["m", "f", "n"]
    assert r0["sample_id"] == "hd_S1_images_S1_Directions_1_54138969_S1_Directions_1_54138969_000001"
    # a known mmhuman3d file name: subject / action parsed as for H36M's own images
    assert (r0["subject"], r0["action"]) == ("S1", "Directions")


def test_h36m_and_coco_conventions(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "m"
    n = 2
    h36m = {
        "image_path": ["a.jpg", "b.jpg"],
        "bbox_xywh": np.array([[0.0, 0.0, 50.0, 20.0], [0.0, 0.0, 10.0, 10.0]]),  # old (N, 4) boxes
        "keypoints3d": indexed_keypoints(n, 17, 4),
        "keypoints3d_mask": np.ones(17),
        "keypoints3d_convention": "h36m",
        "keypoints2d": indexed_keypoints(n, 17, 3),
        "keypoints2d_mask": np.ones(17),
        "keypoints2d_convention": "h36m",
    }
    coco_kp = indexed_keypoints(n, 17, 3)
    coco_kp[0, 3, 2] = 0.0  # left ear not seen in row 0
    coco = dict(h36m, keypoints2d=coco_kp, keypoints2d_convention="coco")
    del coco["keypoints3d"]
    dump_humandata(raw / "hd" / "h36m.npz", h36m)
    dump_humandata(raw / "hd" / "coco.npz", coco)
    source = _source(tmp_path, "hd", {"h36m": "hd/h36m.npz", "coco": "hd/coco.npz"})
    assert ingest_dataset(source, raw, out, check_images=False).rows == {"h36m": 2, "coco": 2}

    rows = read_manifest(out / "hd" / "h36m.parquet").to_pylist()
    kp3 = np.reshape(rows[0]["kp3d"], (24, 4))
    for src, spin in H36M_TO_SPIN.items():
        assert kp3[spin, 0] == src and kp3[spin, 3] == 1.0
    assert kp3[[15, 17, 19, 20, 21, 22, 23], 3].sum() == 0  # thorax, jaw, face: not in H36M-17
    assert rows[0]["center"] == [25.0, 10.0] and rows[0]["scale"] == pytest.approx(0.25)
    assert not rows[0]["has_smpl"] and rows[0]["pose"] == [0.0] * 72

    rows = read_manifest(out / "hd" / "coco.parquet").to_pylist()
    kp = np.reshape(rows[0]["kp2d"], (24, 3))
    # independent oracle: the COCO reader's own table, written by hand from COCO's keypoint list
    np.testing.assert_array_equal(kp[list(COCO17_TO_SPIN24), 0], np.arange(17))
    assert kp[22, 2] == 0.0 and kp[23, 2] == 1.0  # SPIN 22 = left ear
    assert not rows[0]["has_kp3d"]


def test_name_tables_agree_with_independent_tables() -> None:
    np.testing.assert_array_equal(spin24_sources("pw3d")[list(OPENPOSE18_TO_SPIN24)], np.arange(18))
    # H36M-17 -> LSP-14 as SPIN, DaNet and PyMAF evaluate (issue 15): SPIN-24's first 14 are LSP's
    assert spin24_sources("h36m")[:14].tolist() == [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
    assert spin24_sources("smpl_49").tolist() == list(range(25, 49))
    assert spin24_sources("lsp").tolist() == [*range(14), *[-1] * 10]
    with pytest.raises(KeyError, match="unknown keypoint convention 'smplx_137'"):
        spin24_sources("smplx_137")


def test_smpl_variants_and_bad_smpl_are_rejects_with_the_reason(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "m"
    rng = np.random.default_rng(1)
    base = {"image_path": ["a.jpg", "b.jpg"], "bbox_xywh": np.array([[0.0, 0.0, 10.0, 10.0, 1.0]] * 2)}
    flat = _smpl(2, rng, body_shape=(69,))
    dump_humandata(raw / "hd" / "flat.npz", dict(base, smpl=flat, has_smpl=np.array([1, 0])))
    dump_humandata(raw / "hd" / "smplx.npz", dict(base, smpl=_smpl(2, rng, body_shape=(21, 3))))
    dump_humandata(
        raw / "hd" / "nobetas.npz",
        dict(base, smpl={"global_orient": np.zeros((2, 3)), "body_pose": np.zeros((2, 69))}),
    )
    splits = {"flat": "hd/flat.npz", "smplx": "hd/smplx.npz", "nobetas": "hd/nobetas.npz"}
    summary = ingest_dataset(_source(tmp_path, "hd", splits), raw, out, check_images=False)
    assert summary.rows == {"flat": 1, "smplx": 0, "nobetas": 0}
    row = read_manifest(out / "hd" / "flat.parquet").to_pylist()[0]
    np.testing.assert_allclose(
        row["pose"], np.concatenate([flat["global_orient"][0], flat["body_pose"][0]]), rtol=1e-6
    )
    rejects = pq.read_table(out / "hd" / "rejects.parquet").to_pylist()
    by_split = {}
    for r in rejects:
        by_split.setdefault(r["split"], set()).add((r["field"], r["reason"]))
    assert by_split["flat"] == {
        (
            "<labels>",
            "nothing to learn from: no visible 2D keypoint, no 3D joints, no SMPL fit, no DensePose points",
        )
    }
    assert by_split["smplx"] == {("smpl.body_pose", "smpl.body_pose has 21 joints: an SMPL-X fit, not SMPL")}
    assert by_split["nobetas"] == {("smpl.betas", "smpl.betas is None, expected (2, >=10)")}


def test_inconsistent_keypoint_arrays_are_file_rejects_naming_the_key(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "m"
    data = _human_data_file(2)
    dump_humandata(raw / "hd" / "short.npz", data, compressed=True)
    arrays = load_npz(raw / "hd" / "short.npz")
    arrays["keypoints2d"] = arrays["keypoints2d"][:, :5]  # fewer joints than the mask marks
    np.savez_compressed(raw / "hd" / "short.npz", **arrays)
    dump_humandata(raw / "hd" / "conv.npz", dict(data, keypoints2d_convention="smplx"))
    source = _source(tmp_path, "hd", {"short": "hd/short.npz", "conv": "hd/conv.npz"})
    summary = ingest_dataset(source, raw, out, check_images=False)
    reasons = dict(summary.file_rejects)
    assert (
        "keypoints2d has 5 joints, expected 9 (convention 'human_data', 9 in keypoints2d_mask)"
        in (reasons["hd/short.npz"])
    )
    assert "keypoints2d_convention: unknown keypoint convention 'smplx'" in reasons["hd/conv.npz"]


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def test_malicious_object_in_smpl_is_a_file_reject(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "m"
    marker = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(_Payload(marker)))  # the payload is live
    marker.unlink()
    good = _human_data_file(2)
    dump_humandata(raw / "hd" / "good.npz", good)
    evil = dict(good, smpl=dict(good["smpl"], betas=_Payload(marker)))
    dump_humandata(raw / "hd" / "evil.npz", evil)
    source = _source(tmp_path, "hd", {"good": "hd/good.npz", "evil": "hd/evil.npz"})
    summary = ingest_dataset(source, raw, out, check_images=False)
    assert not marker.exists()
    assert summary.rows == {"good": 2, "evil": 0}
    ((file, reason),) = summary.file_rejects
    assert file == "hd/evil.npz" and "evil.npz[smpl]: refused to unpickle posix.system" in reason


def test_checked_in_3dpw_example_reads_mmhuman3d_pw3d_layout(tmp_path: Path) -> None:
    """pw3d_test.npz as mmhuman3d's 3DPW converter writes it: no keypoints, SMPL + box + gender."""
    raw, out = tmp_path / "raw", tmp_path / "m"
    images = [
        "imageFiles/courtyard_dancing_00/image_00000.jpg",
        "imageFiles/courtyard_dancing_00/image_00001.jpg",
    ]
    for i, name in enumerate(images):
        write_image(raw / "3dpw" / name, 60, 80, seed=i)
    smpl = _smpl(2, np.random.default_rng(2))
    del smpl["transl"]
    data = {
        "image_path": images,
        "bbox_xywh": np.array([[5.0, 10.0, 40.0, 60.0, 1.0], [6.0, 10.0, 40.0, 60.0, 1.0]]),
        "smpl": smpl,
        "meta": {"gender": np.array(["f", "f"])},
        "cam_param": [{"K": np.eye(3)}] * 2,
        "config": "pw3d",
    }
    dump_humandata(raw / "humandata_3dpw" / "pw3d_test.npz", data)
    summary = ingest_dataset(load_source("humandata_3dpw"), raw, out)
    assert summary.rows == {"test": 2}
    rows = read_manifest(out / "humandata_3dpw" / "test.parquet").to_pylist()
    assert rows[0]["image_path"] == "../3dpw/imageFiles/courtyard_dancing_00/image_00000.jpg"
    assert rows[0]["sequence"] == "courtyard_dancing_00" and rows[0]["gender"] == "f"
    assert rows[1]["center"] == [26.0, 40.0] and rows[1]["scale"] == pytest.approx(0.3)
    assert all(r["has_smpl"] and not r["has_kp3d"] for r in rows)
