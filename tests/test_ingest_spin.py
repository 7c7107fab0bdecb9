"""Ingest of SPIN-style .npz annotations through the checked-in lsp / h36m source manifests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.datasets.schema import ManifestError, read_manifest, validate_manifest
from stages import ingest as ingest_stage
from tests.fixtures_data.spin import spin_arrays, write_images, write_npz

EXTRAS = "spin_extras/dataset_extras"


def _lsp(raw: Path) -> dict:
    names = ["images/im0001.jpg", "images/im0001.jpg", "images/im0002.jpg", "images/im0003.jpg"]
    names += ["images/im0004.jpg", "images/im0005.jpg", "images/im0006.jpg"]
    arrays = spin_arrays(names, lsp_style=True)
    arrays["has_smpl"][1] = 0
    arrays["part"][3, 5, 0] = np.nan  # row 3: NaN keypoint
    arrays["center"][5] = [500.0, 500.0]  # row 5: box far outside the 64x48 image
    arrays["scale"] = np.array(["0.25"] * 6 + ["abc"])  # hand-made file: scale as text; row 6 not a number
    write_npz(raw / EXTRAS / "lsp_dataset_original_train.npz", arrays)
    write_images(raw / "lsp" / "original", names, skip={"images/im0004.jpg"})  # row 4: image missing
    return arrays


def test_lsp_rows_values_and_rejects(tmp_path: Path, capsys) -> None:
    raw, out = tmp_path / "raw", tmp_path / "manifests"
    arrays = _lsp(raw)
    assert ingest_stage.main(["--dataset", "lsp", "--root", str(raw), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lsp/train: 3 rows" in printed and "lsp/test: skipped" in printed

    table = read_manifest(out / "lsp" / "train.parquet")
    rows = table.to_pylist()
    assert [r["sample_id"] for r in rows] == ["lsp_im0001_p0", "lsp_im0001_p1", "lsp_im0002"]
    assert [r["image_path"] for r in rows] == ["original/images/im0001.jpg"] * 2 + [
        "original/images/im0002.jpg"
    ]
    r0 = rows[0]
    assert r0["dataset"] == "lsp" and r0["split"] == "train" and r0["source_row"].endswith("_train.npz:0")
    np.testing.assert_allclose(np.reshape(r0["kp2d"], (24, 3)), arrays["part"][0], rtol=1e-6)
    assert np.reshape(r0["kp2d"], (24, 3))[14:, 2].sum() == 0  # LSP fills only joints 0-13
    np.testing.assert_allclose(r0["pose"], arrays["pose"][0], rtol=1e-6)
    assert r0["scale"] == pytest.approx(0.25) and r0["center"] == [32.0, 24.0]
    assert [r["has_smpl"] for r in rows] == [True, False, True]
    assert rows[1]["pose"] == [0.0] * 72 and rows[1]["betas"] == [0.0] * 10  # no SMPL -> zeros
    assert [r["gender"] for r in rows] == ["f", "m", "f"]
    assert not any(r["has_kp3d"] for r in rows) and r0["dp_x"] is None and r0["mask"] is None

    rejects = pq.read_table(out / "lsp" / "rejects.parquet").to_pylist()
    got = {(r["source_row"].rsplit(":", 1)[1], r["field"]) for r in rejects}
    assert got == {("3", "part"), ("4", "image_path"), ("5", "center"), ("6", "scale")}
    by_field = {r["field"]: r["reason"] for r in rejects}
    assert "NaN" in by_field["part"] and "non-numeric scale: 'abc'" == by_field["scale"]
    assert "box outside" in by_field["center"] and "missing" in by_field["image_path"]
    assert all(r["split"] == "train" and r["sample_id"].startswith("lsp_im000") for r in rejects)


def test_rerun_gives_identical_files(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "manifests"
    _lsp(raw)
    argv = ["--dataset", "lsp", "--root", str(raw), "--out", str(out)]
    ingest_stage.main(argv)
    first = {p.name: p.read_bytes() for p in (out / "lsp").iterdir()}
    ingest_stage.main(argv)
    assert {p.name: p.read_bytes() for p in (out / "lsp").iterdir()} == first
    assert set(first) == {"train.parquet", "rejects.parquet"}  # no temp files left behind


def test_h36m_ids_names_kp3d_and_broken_files(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "manifests"
    names = ["images/S9_Directions_1.54138969_000001.jpg", "images/S11_Walking 1.55011271_000051.jpg"]
    arrays = spin_arrays(names, seed=3)
    del arrays["has_smpl"]  # absent -> SMPL present because pose and shape are
    arrays["gender"] = np.array([1, 0])  # numeric genders, SPIN's internal code: 0 male, 1 female
    write_npz(raw / EXTRAS / "h36m_valid_protocol1.npz", arrays)
    short = dict(arrays, center=arrays["center"][:1])  # lengths disagree: the whole file is unusable
    write_npz(raw / EXTRAS / "h36m_valid_protocol2.npz", short)
    write_npz(raw / "h36m" / "h36m_train.npz", dict(arrays, part=arrays["part"][:, :14]))  # wrong shape
    write_images(raw / "h36m", names)

    assert ingest_stage.main(["--dataset", "h36m", "--root", str(raw), "--out", str(out)]) == 0
    rows = read_manifest(out / "h36m" / "valid_p1.parquet").to_pylist()
    assert [r["sample_id"] for r in rows] == [
        "h36m_S9_Directions_1_54138969_000001",
        "h36m_S11_Walking_1_55011271_000051",
    ]
    assert [(r["subject"], r["action"]) for r in rows] == [("S9", "Directions"), ("S11", "Walking")]
    assert rows[0]["sequence"] == "S9_Directions_1.54138969"
    assert [r["gender"] for r in rows] == ["f", "m"]
    assert all(r["has_kp3d"] and r["has_smpl"] for r in rows)
    np.testing.assert_allclose(np.reshape(rows[1]["kp3d"], (24, 4)), arrays["S"][1], rtol=1e-6)
    assert read_manifest(out / "h36m" / "valid_p2.parquet").num_rows == 0
    assert read_manifest(out / "h36m" / "train.parquet").num_rows == 0

    rejects = pq.read_table(out / "h36m" / "rejects.parquet").to_pylist()
    p2 = [r for r in rejects if r["split"] == "valid_p2"]
    assert len(p2) == 1 and p2[0]["field"] == "<file>" and "'center' has (1, 2) rows" in p2[0]["reason"]
    train = [r for r in rejects if r["split"] == "train"]
    assert len(train) == 2 and {r["field"] for r in train} == {"part"}
    assert "per-row shape (14, 3), expected (24, 3)" in train[0]["reason"]


def test_validate_manifest_catches_contract_breaks(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "manifests"
    _lsp(raw)
    ingest_stage.main(["--dataset", "lsp", "--root", str(raw), "--out", str(out)])
    table = read_manifest(out / "lsp" / "train.parquet")
    ids = table.column("sample_id").to_pylist()
    dotted = table.set_column(0, "sample_id", [[ids[0] + ".x", *ids[1:]]])
    with pytest.raises(ManifestError, match="contains a dot"):
        validate_manifest(dotted)
    dup = table.set_column(0, "sample_id", [[ids[0]] * len(ids)])
    with pytest.raises(ManifestError, match="not unique"):
        validate_manifest(dup)
    with pytest.raises(ManifestError, match="schema_version"):
        validate_manifest(table.replace_schema_metadata({}))
    with pytest.raises(ManifestError, match="schema differs"):
        validate_manifest(table.drop_columns(["mask"]).replace_schema_metadata(table.schema.metadata))


def test_single_split_rerun_keeps_other_splits_rejects_and_cli_errors(tmp_path: Path, capsys) -> None:
    raw, out = tmp_path / "raw", tmp_path / "manifests"
    _lsp(raw)
    names = ["images/im1001.jpg"]
    write_npz(
        raw / EXTRAS / "lsp_dataset_test.npz",
        dict(spin_arrays(names, lsp_style=True), scale=np.array([-1.0])),
    )
    write_images(raw / "lsp" / "small", names)
    argv = ["--dataset", "lsp", "--root", str(raw), "--out", str(out)]
    assert ingest_stage.main(argv) == 0
    before = pq.read_table(out / "lsp" / "rejects.parquet").to_pylist()
    assert [r["reason"] for r in before if r["split"] == "test"] == ["scale is not positive"]
    assert ingest_stage.main([*argv, "--split", "train"]) == 0
    after = pq.read_table(out / "lsp" / "rejects.parquet").to_pylist()
    assert sorted(map(str, after)) == sorted(map(str, before))
    assert ingest_stage.main([*argv, "--split", "nope"]) == 2
    assert "no split(s) ['nope']" in capsys.readouterr().err
    assert ingest_stage.main(["--dataset", "lsp", "--root", str(tmp_path / "empty"), "--out", str(out)]) == 1


def test_ingest_help_explains_the_stage(capsys) -> None:
    with pytest.raises(SystemExit):
        ingest_stage.main(["--help"])
    out = capsys.readouterr().out
    assert "rejects.parquet" in out and "--root" in out and "--out" in out
