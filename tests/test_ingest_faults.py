"""Ingest never crashes on a bad file: each fault as a user meets it, asserting what the user sees.

Truncated / bit-flipped npz, truncated pickle and garbage JSON become one file-level reject with the full
reason (the other files still land); a row with no label is a row reject; a dataset that yields no row at
all exits 1 saying so; every file ingest writes gets the usual permissions.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import stat
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse

from pipeline.body.smpl_io import BodyModelFileError, read_smpl_file
from pipeline.datasets.ingest import _parse_or_reject, ingest_dataset
from pipeline.datasets.schema import read_manifest
from pipeline.datasets.sources import load_source
from stages import ingest as ingest_stage
from tests.fixtures_data import up3d as up3d_fx
from tests.fixtures_data.humandata import dump_humandata
from tests.fixtures_data.pw3d import sequence_dict, write_sequence
from tests.fixtures_data.spin import spin_arrays, write_images, write_npz

EXTRAS = "spin_extras/dataset_extras"
NAMES = ["images/im0001.jpg", "images/im0002.jpg", "images/im0003.jpg"]


def _lsp_two_splits(raw: Path) -> tuple[Path, Path]:
    """A good LSP test split and a train split; returns (train npz, test npz)."""
    train = write_npz(raw / EXTRAS / "lsp_dataset_original_train.npz", spin_arrays(NAMES, lsp_style=True))
    test = write_npz(raw / EXTRAS / "lsp_dataset_test.npz", spin_arrays(NAMES, seed=1, lsp_style=True))
    write_images(raw / "lsp" / "original", NAMES)
    write_images(raw / "lsp" / "small", NAMES)
    return train, test


def _run(raw: Path, out: Path, dataset: str, capsys) -> tuple[int, str, str]:
    code = ingest_stage.main(["--dataset", dataset, "--root", str(raw), "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _file_rejects(out: Path, dataset: str) -> list[dict]:
    return [r for r in pq.read_table(out / dataset / "rejects.parquet").to_pylist() if r["field"] == "<file>"]


def test_spin_npz_cut_at_40_percent_is_a_file_reject(tmp_path: Path, capsys) -> None:
    raw, out = tmp_path / "raw", tmp_path / "m"
    train, _ = _lsp_two_splits(raw)
    data = train.read_bytes()
    train.write_bytes(data[: int(0.4 * len(data))])  # an interrupted download
    code, printed, _ = _run(raw, out, "lsp", capsys)
    assert code == 0  # the test split still ingested
    assert read_manifest(out / "lsp" / "test.parquet").num_rows == 3
    assert read_manifest(out / "lsp" / "train.parquet").num_rows == 0
    (reject,) = _file_rejects(out, "lsp")
    assert reject["split"] == "train" and reject["file"].endswith("lsp_dataset_original_train.npz")
    assert "not a readable npz file" in reject["reason"]
    assert reject["reason"] in printed  # the summary prints the whole reason, not a prefix


def test_npz_with_a_flipped_data_byte_fails_its_crc(tmp_path: Path, capsys) -> None:
    raw, out = tmp_path / "raw", tmp_path / "m"
    arrays = spin_arrays(NAMES, lsp_style=True)
    train = write_npz(raw / EXTRAS / "lsp_dataset_original_train.npz", arrays)
    write_images(raw / "lsp" / "original", NAMES)
    data = bytearray(train.read_bytes())
    at = bytes(data).index(arrays["part"].tobytes()) + 100  # inside the stored array, header intact
    data[at] ^= 0x40
    train.write_bytes(bytes(data))
    code, printed, err = _run(raw, out, "lsp", capsys)
    assert code == 1 and "no rows ingested" in err
    (reject,) = _file_rejects(out, "lsp")
    assert "Bad CRC-32" in reject["reason"] and "[part]" in reject["reason"]
    assert reject["reason"] in printed


def test_truncated_3dpw_pickle_is_a_file_reject(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    root = raw / "3dpw"
    write_sequence(root, "test", sequence_dict("good_seq", 2, valid=[[1, 1]], genders=["f"]))
    cut = write_sequence(root, "test", sequence_dict("cut_seq", 2, valid=[[1, 1]], genders=["f"], seed=2))
    cut.write_bytes(cut.read_bytes()[: int(0.4 * cut.stat().st_size)])
    summary = ingest_dataset(load_source("3dpw"), raw, tmp_path / "m")
    assert summary.rows == {"test": 2}
    (file, reason), *more = summary.file_rejects
    assert not more and file.endswith("cut_seq.pkl") and "cut_seq.pkl: damaged pickle (" in reason


def test_up3d_truncated_or_garbage_per_image_files_reject_their_rows(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    folder = raw / "up3d" / "up-3d"
    folder.mkdir(parents=True)
    for i in range(4):
        up3d_fx.write_sample(folder, f"0000{i}", seed=i)
    body = folder / "00001_body.pkl"
    body.write_bytes(body.read_bytes()[: int(0.4 * body.stat().st_size)])
    (folder / "00002_body.pkl").write_bytes(b"<html>404 Not Found</html>")
    (folder / "00003_joints.npy").write_bytes((folder / "00003_joints.npy").read_bytes()[:100])
    up3d_fx.write_split(folder, "trainval.txt", [f"0000{i}" for i in range(4)])
    summary = ingest_dataset(load_source("up3d"), raw, tmp_path / "m")
    assert summary.rows == {"trainval": 1}
    rejects = pq.read_table(tmp_path / "m" / "up3d" / "rejects.parquet").to_pylist()
    assert [(r["sample_id"], r["field"]) for r in rejects] == [
        ("up3d_00001", "body.pkl"),
        ("up3d_00002", "body.pkl"),
        ("up3d_00003", "joints.npy"),
    ]
    assert all("unreadable" in r["reason"] for r in rejects)


def test_garbage_json_is_a_file_reject_and_empty_dataset_exits_1(tmp_path: Path, capsys) -> None:
    raw, out = tmp_path / "raw", tmp_path / "m"
    path = raw / "densepose_coco" / "densepose_coco_2014_minival.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"images": [ {"id": 1, \x00\xff garbage')
    (path.parent / "densepose_coco_2014_train.json").write_text("[1, 2, 3]")  # JSON, but not COCO's
    code, printed, err = _run(raw, out, "densepose_coco", capsys)
    assert code == 1
    assert "densepose_coco: no rows ingested" in err and "every row and file was rejected" in err
    rejects = {r["split"]: r["reason"] for r in _file_rejects(out, "densepose_coco")}
    assert set(rejects) == {"minival", "train"}
    assert all(reason.startswith("cannot read file:") and reason in printed for reason in rejects.values())


def test_no_annotation_file_at_all_exits_1(tmp_path: Path, capsys) -> None:
    code, _, err = _run(tmp_path / "raw", tmp_path / "m", "lsp", capsys)
    assert code == 1 and "no annotation file found" in err


def test_row_with_nothing_to_learn_is_a_row_reject(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "m"
    arrays = spin_arrays(NAMES, lsp_style=True)
    arrays["part"][1, :, 2] = 0.0  # row 1: no visible keypoint ...
    arrays["has_smpl"][1:] = 0.0  # ... rows 1 and 2: no SMPL fit, and LSP has no 3D joints
    write_npz(raw / EXTRAS / "lsp_dataset_original_train.npz", arrays)
    write_images(raw / "lsp" / "original", NAMES)
    summary = ingest_dataset(load_source("lsp"), raw, out, splits=["train"])
    rows = read_manifest(out / "lsp" / "train.parquet").to_pylist()
    assert [r["sample_id"] for r in rows] == ["lsp_im0001", "lsp_im0003"]  # row 2 still has its 2D joints
    (reject,) = pq.read_table(out / "lsp" / "rejects.parquet").to_pylist()
    assert reject["sample_id"] == "lsp_im0002" and reject["field"] == "<labels>"
    assert "nothing to learn from" in reject["reason"]
    assert summary.rejects[("<labels>", "nothing to learn from")] == 1


@contextlib.contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _lsp_two_splits(raw)
    for mask, want in ((0o022, 0o644), (0o077, 0o600)):
        out = tmp_path / f"m{mask:o}"
        with _umask(mask):
            ingest_dataset(load_source("lsp"), raw, out)
        written = sorted((out / "lsp").iterdir())
        assert [p.name for p in written] == ["rejects.parquet", "test.parquet", "train.parquet"]
        assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {want}


def _mutations(data: bytes, n: int, seed: int):
    """``n`` damaged copies of ``data``: cut at a random point, or three random bytes overwritten."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        if i % 2:
            yield data[: int(rng.integers(0, len(data)))]
        else:
            damaged = bytearray(data)
            for at in rng.integers(0, len(data), 3):
                damaged[at] = int(rng.integers(0, 256))
            yield bytes(damaged)


def test_random_damage_never_escapes_as_an_exception(tmp_path: Path) -> None:
    """Property: whatever the damage, one file gives rows or a reject record, never a traceback."""
    spin = write_npz(tmp_path / "a.npz", spin_arrays(NAMES[:2], lsp_style=True))
    seq = write_sequence(tmp_path, "test", sequence_dict("s", 2, valid=[[1, 1]], genders=["m"]), images=False)
    smpl = tmp_path / "SMPL_NEUTRAL.pkl"
    smpl.write_bytes(
        pickle.dumps(
            {"v_template": np.zeros((5, 3)), "J_regressor": scipy.sparse.csc_matrix(np.eye(5))}, protocol=2
        )
    )
    smpl_dict = {
        "global_orient": np.zeros((2, 3)),
        "body_pose": np.zeros((2, 23, 3)),
        "betas": np.zeros((2, 10)),
    }
    human = dump_humandata(
        tmp_path / "h.npz",
        {
            "image_path": NAMES[:2],
            "bbox_xywh": np.ones((2, 5)),
            "smpl": smpl_dict,
            "meta": {"gender": ["m", "f"]},
        },
    )
    outcomes = Counter()
    for fmt, path in (("spin_npz", spin), ("pw3d_pkl", seq), ("humandata", human)):
        for k, damaged in enumerate(_mutations(path.read_bytes(), 150, seed=len(fmt))):
            target = tmp_path / f"damaged{k}{path.suffix}"
            target.write_bytes(damaged)
            got = _parse_or_reject((fmt, target, "lsp", ".", target.name))
            outcomes[(fmt, type(got).__name__)] += 1
    for k, damaged in enumerate(_mutations(smpl.read_bytes(), 150, seed=3)):
        target = tmp_path / f"smpl{k}.pkl"
        target.write_bytes(damaged)
        with contextlib.suppress(BodyModelFileError):
            read_smpl_file(target)
    assert outcomes[("spin_npz", "dict")] > 100 and outcomes[("pw3d_pkl", "dict")] > 50  # mostly rejects
    assert outcomes[("humandata", "dict")] > 100
