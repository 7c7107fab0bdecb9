"""A newcomer's first hour, training outputs: the validation curve leaves training bit-identical, the
curves (every loss term, LR, validation) as JSON for DVC and as a PNG (issue 18, item 4)."""

from __future__ import annotations

import json
import math

import cv2
import pytest
import torch

from model.training import curves, validation
from tests.fixtures_data.synth_chain import synth_shards

LOG = [
    {"step": 10, "lr": 1e-3, "loss": {"total": 5.0, "pose": 1.0, "uv": 0.5}},
    {"step": 20, "lr": 5e-4, "loss": {"total": 3.0, "pose": 0.5}},
    {"step": 30, "lr": 1e-4, "loss": {"total": 2.0, "pose": 0.25, "uv": 0.25}},
]


def test_nice_ticks_by_hand():
    assert curves.nice_ticks(0.0, 10.0, 4) == [0.0, 5.0, 10.0]  # raw step 2.5 -> 5
    assert curves.nice_ticks(0.13, 0.61, 4) == pytest.approx([0.2, 0.4, 0.6])  # raw 0.12 -> 0.2
    assert curves.nice_ticks(3.0, 3.0) == [3.0]


def test_write_curves_json_rows_and_png_panels(tmp_path):
    (tmp_path / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in LOG))
    (tmp_path / validation.VAL_CURVE_FILE).write_text(
        json.dumps([{"step": 15, "pa_mpjpe": 120.0, "iuv_part_accuracy": 50.0}])
    )
    terms, png = curves.write_curves(tmp_path)
    rows = json.loads(terms.read_text())
    assert rows[1] == {"step": 20, "lr": 5e-4, "total": 3.0, "pose": 0.5}
    picture = cv2.imread(str(png))
    panels = 3 + 1 + 2  # total, pose, uv; the learning rate; val PA-MPJPE and part accuracy
    width, height = curves.PANEL
    assert picture.shape == (28 + math.ceil(panels / 4) * height, 4 * width, 3)


def test_append_row_replaces_rows_from_a_resumed_step(tmp_path):
    path = tmp_path / "val.json"
    for step in (2, 4, 6):
        validation.append_row(path, {"step": step, "v": step})
    assert [r["step"] for r in validation.append_row(path, {"step": 4, "v": -1})] == [2, 4]
    assert json.loads(path.read_text())[-1]["v"] == -1


def test_random_state_kept_restores_every_generator():
    import random

    import numpy as np

    torch.manual_seed(5)
    np.random.seed(5)  # noqa: NPY002
    random.seed(5)
    expected = (torch.rand(1), np.random.rand(), random.random())  # noqa: NPY002
    torch.manual_seed(5)
    np.random.seed(5)  # noqa: NPY002
    random.seed(5)
    with validation.random_state_kept():
        torch.rand(10), np.random.rand(10), random.random()  # noqa: NPY002
    assert (torch.rand(1), np.random.rand(), random.random()) == expected  # noqa: NPY002


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return synth_shards(tmp_path_factory.mktemp("first_hour_training"), n=10, size=64, crop_size=64)


@pytest.mark.slow
def test_validation_curve_leaves_training_bit_identical(shards, tmp_path):
    from stages.train import main as train

    common = [
        "--no-progress", "model.preset=tiny", "model.overrides.image_size=64", "run.device=cpu",
        f"data.train=[{{path: {shards / 'shards' / 'synth' / 'train'}}}]",
        f"data.val={shards / 'shards' / 'synth' / 'val'}",
        f"model.overrides.mean_params={shards / 'raw' / 'synth' / 'mean_params.npz'}",
        "data.batch_size=2", "run.steps=4", "run.checkpoint_every=2", "run.log_every=1", "optim.iuv_only_steps=1",
    ]  # fmt: skip
    assert train(["--out", str(tmp_path / "plain"), *common, "run.val_samples=0"]) == 0
    assert train(["--out", str(tmp_path / "val"), *common, "run.val_samples=2"]) == 0
    plain = torch.load(tmp_path / "plain" / "model.pt", weights_only=False)
    with_val = torch.load(tmp_path / "val" / "model.pt", weights_only=False)
    assert all(torch.equal(plain["model"][k], with_val["model"][k]) for k in plain["model"])
    assert plain["provenance"]["recorded"] is True and plain["provenance"]["steps"] == 4
    assert not (tmp_path / "plain" / validation.VAL_CURVE_FILE).exists()
    rows = json.loads((tmp_path / "val" / validation.VAL_CURVE_FILE).read_text())
    assert [r["step"] for r in rows] == [2, 4] and all(r["samples"] == 1 for r in rows)  # the split has 1
    assert all(0 <= r["iuv_part_accuracy"] <= 100 and r["pa_mpjpe"] > 0 for r in rows)
    for name in (curves.TERMS_FILE, curves.CURVES_PNG):
        assert (tmp_path / "val" / name).stat().st_size > 100
