"""Ingest of 3DPW's own sequence pickles (Python 2 pickles) through the checked-in 3dpw manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.spatial.transform import Rotation

from pipeline.datasets.ingest import ingest_dataset
from pipeline.datasets.pw3d import OPENPOSE18_TO_SPIN24
from pipeline.datasets.schema import read_manifest
from pipeline.datasets.sources import load_source
from tests.fixtures_data.pw3d import sequence_dict, write_sequence


def _raw(tmp_path: Path) -> tuple[Path, dict]:
    raw = tmp_path / "raw"
    root = raw / "3dpw"
    data = sequence_dict("courtyard_basketball_00", 4, valid=[[1, 1, 0, 1], [1, 0, 0, 0]], genders=["m", "f"])
    data["poses"][0][1, :3] = 0.0  # frame 1: identity root, so the camera-frame root is the camera rotation
    data["poses2d"][1][0, 2, :] = 0.0  # person 1, frame 0: no joint detected -> no box
    write_sequence(root, "test", data)
    broken = sequence_dict("downtown_walking_00", 3, valid=[[1, 1, 1]], genders=["f"], seed=1)
    broken["poses2d"][0] = broken["poses2d"][0][:, :2]  # (F, 2, 18): wrong shape
    write_sequence(root, "test", broken)
    (root / "sequenceFiles" / "test" / "garbage.pkl").write_bytes(b"not a pickle")
    return raw, data


def test_rows_per_person_and_valid_frame_with_camera_frame_root(tmp_path: Path) -> None:
    raw, data = _raw(tmp_path)
    out = tmp_path / "manifests"
    summary = ingest_dataset(load_source("3dpw"), raw, out)
    assert summary.rows == {"test": 3} and set(summary.skipped) == {"train", "validation"}

    rows = read_manifest(out / "3dpw" / "test.parquet").to_pylist()
    ids = [r["sample_id"] for r in rows]
    assert ids == [
        "3dpw_courtyard_basketball_00_p0_00000",
        "3dpw_courtyard_basketball_00_p0_00001",
        "3dpw_courtyard_basketball_00_p0_00003",
    ]
    r1 = rows[1]
    assert r1["image_path"] == "imageFiles/courtyard_basketball_00/image_00001.jpg"
    assert (r1["gender"], r1["subject"], r1["sequence"]) == ("m", "p0", "courtyard_basketball_00")
    assert r1["has_smpl"] and not r1["has_kp3d"]
    # camera 1 is rotated 30 deg about y; with an identity world root the camera-frame root is that rotation
    np.testing.assert_allclose(r1["pose"][:3], [0.0, np.deg2rad(30.0), 0.0], atol=1e-6)
    np.testing.assert_allclose(r1["pose"][3:], data["poses"][0][1, 3:], rtol=1e-6)
    # frame 3: composing rotations by hand
    want = Rotation.from_euler("y", 90, degrees=True) * Rotation.from_rotvec(data["poses"][0][3, :3])
    got = Rotation.from_rotvec(rows[2]["pose"][:3])
    assert (want.inv() * got).magnitude() < 1e-5
    np.testing.assert_allclose(r1["betas"], data["betas"][0][:10], rtol=1e-6)
    kp = np.reshape(r1["kp2d"], (24, 3))
    np.testing.assert_allclose(kp[list(OPENPOSE18_TO_SPIN24)], data["poses2d"][0][1].T, rtol=1e-6)
    xy = data["poses2d"][0][1][:2]
    side = max(np.ptp(xy[0]), np.ptp(xy[1]))
    assert r1["scale"] == pytest.approx(1.2 * side / 200, rel=1e-5)
    np.testing.assert_allclose(r1["center"], (xy.min(axis=1) + xy.max(axis=1)) / 2, rtol=1e-5)

    rejects = pq.read_table(out / "3dpw" / "rejects.parquet").to_pylist()
    reasons = {(r["source_row"].split("/")[-1], r["field"]) for r in rejects}
    assert ("courtyard_basketball_00.pkl:p1:f0", "kp2d") in reasons
    assert {s for s, f in reasons if f == "poses2d"} == {f"downtown_walking_00.pkl:p0:f{i}" for i in range(3)}
    assert ("garbage.pkl", "<file>") in reasons and len(rejects) == 5
    assert {r["file"] for r in rejects if r["field"] == "poses2d"} == {
        "3dpw/sequenceFiles/test/downtown_walking_00.pkl"
    }


def test_dask_processes_give_the_same_table(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    for k in range(8):
        data = sequence_dict(f"seq_{k:02d}", 2, valid=[[1, 1]], genders=["m"], seed=k)
        write_sequence(raw / "3dpw", "validation", data, images=k == 0)
    source = load_source("3dpw")
    ingest_dataset(source, raw, tmp_path / "a", workers=1, splits=["validation"])
    ingest_dataset(source, raw, tmp_path / "b", workers=2, splits=["validation"])
    a = (tmp_path / "a" / "3dpw" / "validation.parquet").read_bytes()
    assert a == (tmp_path / "b" / "3dpw" / "validation.parquet").read_bytes()
    assert read_manifest(tmp_path / "a" / "3dpw" / "validation.parquet").num_rows == 2  # others lack images
