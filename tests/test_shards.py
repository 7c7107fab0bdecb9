"""render_job orchestration + shard format: reproducibility, resume after SIGKILL, rejects, verification."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline import shards as fmt
from pipeline.crop import apply_affine, crop_transform
from pipeline.render_job import render_dataset
from pipeline.shard_build import ShardParams, load_manifest, plan_shards
from stages.verify_shards import main as verify_main
from stages.verify_shards import verify_split
from tests.test_shards_helpers import RENDERER, SLOW_RENDERER, make_rows, write_manifest

REPO = Path(__file__).resolve().parents[1]


def _params(**kw) -> ShardParams:
    return ShardParams(**{"dataset": "toy", "split": "train", "shard_size": 4, "crop_size": 64,
                          "renderer": RENDERER, **kw})  # fmt: skip


def _tar_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tar"))}


@pytest.fixture
def toy(tmp_path):
    rows = make_rows(14)
    manifest, images = write_manifest(tmp_path, rows)
    return rows, manifest, images


def test_crop_transform_maps_box_to_crop_centre():
    m = crop_transform(np.array([50.0, 80.0]), scale=0.5, crop_size=120, margin=1.2)
    # the box centre lands on the crop centre, the box corners at margin-inset positions
    np.testing.assert_allclose(apply_affine(m, np.array([[50.0, 80.0]])), [[59.5, 59.5]])
    half_box = 100 * 0.5
    corner = apply_affine(m, np.array([[50 + half_box, 80 + half_box]]))
    np.testing.assert_allclose(corner, [[59.5 + 60 / 1.2, 59.5 + 60 / 1.2]])
    with pytest.raises(ValueError, match="invalid crop box"):
        crop_transform(np.array([0.0, 0.0]), scale=0.0, crop_size=64)


def test_shards_are_reproducible_and_complete(toy, tmp_path):
    rows, manifest, images = toy
    params = _params()
    summary = render_dataset(manifest, images, tmp_path / "a", params, workers=0, progress=False)
    assert summary["samples"] == len(rows) and summary["shards"] == 4 and summary["rejects"] == 0
    again = render_dataset(manifest, images, tmp_path / "b", params, workers=0, progress=False)
    assert again["shards_built"] == 4
    assert _tar_bytes(tmp_path / "a") == _tar_bytes(tmp_path / "b")
    # membership is the sorted manifest cut every shard_size rows
    index = fmt.read_index(tmp_path / "a")
    assert [s["keys"] for s in index["shards"]] == [["s0000", "s0003"], ["s0004", "s0007"],
                                                    ["s0008", "s0011"], ["s0012", "s0013"]]  # fmt: skip
    assert plan_shards(14, 4) == [(0, 4), (4, 8), (8, 12), (12, 14)]
    # samples without SMPL carry no IUV and say so
    import tarfile

    with tarfile.open(tmp_path / "a" / "toy-train-000000.tar") as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("s0002.json").read())
        smpl = fmt.decode_npy(tar.extractfile("s0000.smpl.npy").read())
        kp2d = fmt.decode_npy(tar.extractfile("s0000.kp2d.npy").read())
        meta0 = json.loads(tar.extractfile("s0000.json").read())
    assert names == sorted(names)
    assert "s0002.iuv.png" not in names and meta["has_iuv"] is False and meta["has_smpl"] is False
    assert "s0000.iuv.png" in names and "s0001.kp3d.npy" not in names
    np.testing.assert_allclose(smpl, np.r_[rows[0]["pose"], rows[0]["betas"]], rtol=1e-6)
    expect = apply_affine(np.asarray(meta0["crop"]["matrix"]), np.asarray(rows[0]["kp2d"])[:, :2])
    np.testing.assert_allclose(kp2d[:, :2], expect, atol=1e-3)
    assert verify_split(tmp_path / "a") == {}


def test_same_bytes_with_one_and_two_dask_workers(toy, tmp_path):
    _, manifest, images = toy
    params = _params()
    render_dataset(manifest, images, tmp_path / "serial", params, workers=0, progress=False)
    render_dataset(manifest, images, tmp_path / "w1", params, workers=1, progress=False)
    render_dataset(manifest, images, tmp_path / "w2", params, workers=2, progress=False)
    ref = _tar_bytes(tmp_path / "serial")
    assert _tar_bytes(tmp_path / "w1") == ref and _tar_bytes(tmp_path / "w2") == ref
    assert (tmp_path / "w1" / "index.json").read_bytes() == (tmp_path / "w2" / "index.json").read_bytes()


def test_unreadable_image_is_a_reject_with_reason(toy, tmp_path):
    rows, _, _ = toy
    rows = [dict(r) for r in rows]
    rows[5]["image_path"] = "images/missing.jpg"
    rows[6]["scale"] = -1.0
    manifest, images = write_manifest(tmp_path / "m", rows)
    (images / "images" / "missing.jpg").unlink()
    (images / rows[9]["image_path"]).write_bytes(b"not a jpeg")  # shared with row 8
    summary = render_dataset(manifest, images, tmp_path / "out", _params(), workers=0, progress=False)
    index = fmt.read_index(tmp_path / "out")
    reasons = {r["key"]: r["reason"] for r in index["rejects"]}
    assert set(reasons) == {"s0005", "s0006", "s0008", "s0009"}
    assert "file not found" in reasons["s0005"] and "cannot be decoded" in reasons["s0008"]
    assert "invalid crop box" in reasons["s0006"]
    assert summary["samples"] + summary["rejects"] == len(rows)


def test_rerun_keeps_verified_shards_and_redoes_broken_ones(toy, tmp_path):
    _, manifest, images = toy
    out = tmp_path / "out"
    render_dataset(manifest, images, out, _params(), workers=0, progress=False)
    ref = _tar_bytes(out)
    (out / "toy-train-000001.tar").unlink()
    path = out / "toy-train-000002.tar"
    path.write_bytes(path.read_bytes()[:-10] + b"x" * 10)
    summary = render_dataset(manifest, images, out, _params(), workers=0, progress=False)
    assert summary["shards_built"] == 2 and summary["shards_kept"] == 2
    assert _tar_bytes(out) == ref
    # a changed parameter invalidates everything
    summary = render_dataset(manifest, images, out, _params(crop_size=48), workers=0, progress=False)
    assert summary["shards_built"] == 4


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_bytes(tmp_path):
    rows = make_rows(48)
    manifest, images = write_manifest(tmp_path, rows)
    params = _params(shard_size=1, crop_size=96, renderer=SLOW_RENDERER)
    render_dataset(manifest, images, tmp_path / "ref", params, workers=0, progress=False)
    cmd = [sys.executable, "-m", "pipeline.render_job", "--dataset", "toy", "--root", str(images),
           "--manifests", str(tmp_path / "manifests"), "--out", str(tmp_path / "shards"), "--shard-size", "1",
           "--crop-size", "96", "--renderer", SLOW_RENDERER, "--workers", "1", "--no-progress"]  # fmt: skip
    out = tmp_path / "shards" / "toy" / "train"
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    killed_at = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            n = len(fmt.read_index(out)["shards"])
        except (FileNotFoundError, ValueError):
            n = 0
        if n >= 3:
            os.killpg(proc.pid, signal.SIGKILL)  # the stage and its Dask processes, all at once
            killed_at = n
            break
        time.sleep(0.005)
    proc.wait()
    assert killed_at is not None and killed_at < len(rows), "the stage finished before it could be killed"
    assert len(fmt.read_index(out)["shards"]) < len(rows)
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    assert _tar_bytes(out) == _tar_bytes(tmp_path / "ref")
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    assert verify_split(out) == {}


def test_verify_detects_corrupted_byte_and_missing_shard(toy, tmp_path, capsys):
    _, manifest, images = toy
    out = tmp_path / "out"
    render_dataset(manifest, images, out, _params(), workers=0, progress=False)
    assert verify_main([str(out)]) == 0
    path = out / "toy-train-000001.tar"
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x5A
    path.write_bytes(bytes(data))
    (out / "toy-train-000003.tar").unlink()
    assert verify_main([str(out)]) == 1
    report = capsys.readouterr().out
    assert "toy-train-000001.tar: <shard>: md5" in report
    assert "toy-train-000003.tar: <shard>: missing" in report
    assert "toy-train-000000.tar" not in report and "toy-train-000002.tar" not in report


def test_manifest_with_duplicate_ids_is_refused(tmp_path):
    rows = make_rows(3)
    rows[2]["sample_id"] = rows[0]["sample_id"]
    manifest, _ = write_manifest(tmp_path, rows)
    with pytest.raises(ValueError, match="duplicate sample_id"):
        load_manifest(manifest)


def test_dataset_mode_wires_into_an_existing_cli(toy, tmp_path, capsys):
    import argparse

    from pipeline.render_job import add_dataset_arguments, main_dataset

    _, manifest, images = toy
    parser = argparse.ArgumentParser()
    parser.add_argument("--verbose", action="store_true")  # the host CLI's own flag, beside the added ones
    add_dataset_arguments(parser)
    args = parser.parse_args(["--dataset", "toy", "--root", str(images), "--manifests",
                              str(manifest.parents[1]), "--out", str(tmp_path / "shards"), "--workers", "0",
                              "--shard-size", "5",
                              "--crop-size", "64", "--renderer", RENDERER, "--no-progress"])  # fmt: skip
    (summary,) = main_dataset(args)
    assert summary["shards"] == 3 and summary["samples"] == 14
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == summary
    assert verify_split(tmp_path / "shards" / "toy" / "train") == {}


def test_iuv_png_is_lossless_for_every_code():
    """iuv.png must give back every (I, U, V) byte exactly, including noise-like maps and the extremes."""
    rng = np.random.default_rng(0)
    iuv = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    iuv[..., 0] %= 25
    iuv[0, :3] = [[0, 0, 0], [24, 255, 255], [1, 0, 255]]
    assert np.array_equal(fmt.decode_png(fmt.encode_png(iuv)), iuv)
    assert fmt.encode_png(iuv) == fmt.encode_png(iuv.copy())  # deterministic bytes
