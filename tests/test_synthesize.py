"""The built-in synthetic dataset: determinism, SPIN-format annotations, and ingest through the real parser."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.synth.poses import LIMITS_HIGH, LIMITS_LOW, mirror_euler, sample_body_poses
from stages.synthesize import main as synthesize


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    assert (
        synthesize(
            ["--out", str(root / "synth"), "--n", "12", "--size", "96", "--batch-size", "5", "--no-progress"]
        )
        == 0
    )
    return root


def test_same_seed_gives_same_bytes(synth_root, tmp_path):
    again = tmp_path / "synth"
    assert (
        synthesize(["--out", str(again), "--n", "12", "--size", "96", "--batch-size", "5", "--no-progress"])
        == 0
    )
    first = sorted(
        p.relative_to(synth_root / "synth") for p in (synth_root / "synth").rglob("*") if p.is_file()
    )
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second and len(first) == 12 + 3  # images, train.npz, val.npz, mean_params.npz
    for relative in first:
        if relative.suffix == ".npz":
            a, b = np.load(synth_root / "synth" / relative), np.load(again / relative)
            assert all(np.array_equal(a[k], b[k]) for k in a.files)
        else:
            assert (synth_root / "synth" / relative).read_bytes() == (again / relative).read_bytes()


def test_annotations_follow_spin_format_and_land_on_the_body(synth_root):
    train = np.load(synth_root / "synth" / "train.npz")
    val = np.load(synth_root / "synth" / "val.npz")
    assert len(train["imgname"]) + len(val["imgname"]) == 12 and len(val["imgname"]) >= 1
    assert train["part"].shape[1:] == (24, 3) and train["S"].shape[1:] == (24, 4)
    assert train["pose"].shape[1:] == (72,) and train["shape"].shape[1:] == (10,)
    assert np.all(train["has_smpl"] == 1)
    import cv2

    for k, name in enumerate(train["imgname"]):
        image = cv2.imread(str(synth_root / "synth" / name))
        assert image.shape == (96, 96, 3)
        visible = train["part"][k, :, 2] > 0
        assert visible.sum() >= 20
        # keypoints lie on the person, not on the background: the background differs from the body colours,
        # so check that the scale box (SPIN convention) contains them all.
        half = train["scale"][k] * 100
        offsets = np.abs(train["part"][k, visible, :2] - train["center"][k])
        assert np.all(offsets <= half)


def test_ingest_reads_synth_through_the_spin_parser(synth_root, tmp_path):
    from stages.ingest import main as ingest

    assert ingest(["--dataset", "synth", "--root", str(synth_root), "--out", str(tmp_path)]) == 0
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "synth" / "train.parquet").num_rows
    rows += pq.read_table(tmp_path / "synth" / "val.parquet").num_rows
    assert rows == 12
    assert pq.read_table(tmp_path / "synth" / "rejects.parquet").num_rows == 0


def test_sampled_poses_stay_within_joint_limits_and_mirror_is_an_involution():
    euler, templates = sample_body_poses(np.random.default_rng(0), 500)
    assert np.all(euler >= LIMITS_LOW - 1e-12) and np.all(euler <= LIMITS_HIGH + 1e-12)
    assert {"standing", "walking", "sitting", "arms_raised"} <= set(templates)
    np.testing.assert_array_equal(mirror_euler(mirror_euler(euler)), euler)
    # limits are left/right symmetric, so mirroring keeps a pose within them
    mirrored = mirror_euler(euler)
    assert np.all(mirrored >= LIMITS_LOW - 1e-12) and np.all(mirrored <= LIMITS_HIGH + 1e-12)


def test_background_noise_is_gaussian_with_sigma_4_and_backgrounds_vary():
    from pipeline.synth.scene import _gaussian_table, random_background

    table = _gaussian_table(4.0).astype(np.float64)
    assert abs(table.mean()) < 0.05 and abs(table.std() - 4.0) < 0.1 and np.array_equal(table, -table[::-1])
    rng = np.random.default_rng(0)
    a, b = random_background(rng, 64, 48), random_background(rng, 64, 48)
    assert a.shape == (64, 48, 3) and a.dtype == np.uint8 and not np.array_equal(a, b)
    assert np.array_equal(a, random_background(np.random.default_rng(0), 64, 48))


def test_front_back_cues_sit_on_the_back_of_the_head_and_the_chest():
    """Hair covers the back and crown of the head but not the face; the print sits on the chest only."""
    from pipeline.body import load_body_model, load_dense_parts
    from pipeline.synth.scene import add_front_back_cues, rest_face_centres, rest_regions

    body, parts = load_body_model("anny-smpl24"), load_dense_parts("anny-smpl24")
    regions = rest_regions(body, parts)
    centres = rest_face_centres(body, parts)
    head = np.isin(parts.face_part, (23, 24))
    y, z = centres[:, 1], centres[:, 2]
    face = head & (z > np.median(z[head])) & (y < np.quantile(y[head], 0.6))  # front, below the hairline
    hair, chest = regions["hair"], regions["chest"]
    assert hair[head].mean() > 0.3 and not hair[~head].any()
    assert centres[hair, 2].mean() < centres[head & ~hair, 2].mean()  # behind the face
    assert face.sum() > 500 and not (hair & face).any()  # the face stays skin
    assert chest.any() and np.all(parts.face_part[chest] == 2)
    colours = np.zeros((40, len(parts.face_part), 3))
    out = add_front_back_cues(np.random.default_rng(0), colours, regions)
    assert np.all(np.ptp(out[:, hair], axis=1) == 0) and np.all(out[:, hair].sum(-1) > 0)  # one colour each
    printed = out[:, chest].sum((1, 2)) > 0
    assert 0.4 < printed.mean() < 0.95 and not out[:, ~(hair | chest)].any()
