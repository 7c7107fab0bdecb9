"""Fault suite, training: one bad sample drops its own terms and is counted (no LinAlgError, no NaN loss),
bad knobs are one line before anything runs, and a run killed with SIGKILL resumes with a log that has
every step once and no temporary files left behind."""

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
import torch

from model.training.targets import LOADER_CROP, batch_to_inputs, pixels_to_normalised
from pipeline.render.camera_fit import fit_translation
from tests.model_fakes import FakeBody
from tests.test_train import shards  # noqa: F401 - the module-scoped fixture of rendered toy shards

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "train" / "demo.yaml"
FOCAL, TRUE_T = 5000.0, torch.tensor([0.05, -0.1, 12.0], dtype=torch.float64)


def loader_batch(body: FakeBody, count: int = 4) -> dict:
    """A batch as pipeline.loader yields it, kp2d the exact projection of the body's SPIN keypoints through
    the crop camera at TRUE_T (so the fit has a known answer)."""
    g = torch.Generator().manual_seed(0)
    pose = torch.randn(count, 72, generator=g) * 0.2
    betas = torch.randn(count, 10, generator=g) * 0.5
    with torch.no_grad():
        out = body(betas=betas, pose=pose)
        points = body.regress(out.vertices, "spin24").double() + TRUE_T
    principal = (LOADER_CROP - 1) / 2.0
    pixels = points[..., :2] / points[..., 2:3] * FOCAL + principal
    kp2d = torch.cat([pixels, torch.ones(count, 24, 1, dtype=torch.float64)], -1).float()
    return {
        "key": [f"s{i}" for i in range(count)],
        "image": torch.zeros(count, 3, LOADER_CROP, LOADER_CROP, dtype=torch.uint8),
        "iuv": torch.zeros(count, 3, 56, 56, dtype=torch.uint8),
        "has_iuv": torch.zeros(count, dtype=torch.bool),
        "kp2d": kp2d,
        "kp3d": torch.cat([points.float(), torch.ones(count, 24, 1)], -1),
        "has_kp3d": torch.ones(count, dtype=torch.bool),
        "pose": pose,
        "betas": betas,
        "has_smpl": torch.ones(count, dtype=torch.bool),
    }


def test_the_fit_gives_nan_for_a_sample_without_keypoints_and_solves_the_others_alone():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(3, 24, 3)) * 0.3
    true = np.array([0.1, -0.2, 10.0])
    pixels = (points + true)[..., :2] / (points + true)[..., 2:] * FOCAL + 111.5
    weights = np.ones((3, 24))
    weights[1] = 0.0  # nothing visible: singular normal equations before (LinAlgError for the batch)
    pixels[2, 5] = np.nan  # one keypoint without coordinates
    got = fit_translation(points, pixels, weights, FOCAL, np.full(2, 111.5))
    assert np.isnan(got[1]).all()
    np.testing.assert_allclose(got[0], true, atol=1e-4)  # the prior on depth is weak
    np.testing.assert_allclose(got[2], true, atol=1e-4)
    alone = fit_translation(points[[0]], pixels[[0]], weights[[0]], FOCAL, np.full(2, 111.5))
    np.testing.assert_array_equal(got[0], alone[0])


def test_a_sample_with_nan_or_no_keypoints_drops_its_terms_and_is_counted():
    body = FakeBody()
    batch = loader_batch(body)
    batch["kp2d"][1, 7, 0] = float("nan")  # a NaN label
    batch["kp2d"][2, :, 2] = 0.0  # no visible keypoint
    batch["kp3d"][3, 0, 1] = float("inf")
    _, targets = batch_to_inputs(batch, 64, 16, body, torch.device("cpu"))
    assert targets["labels_dropped"] == 2 and targets["fit_skipped"] == 2  # samples 1, 2 cannot fit
    for key, value in targets.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            assert torch.isfinite(value).all(), key
    assert (targets["kp2d"][1, :, 2] == 0).all() and not targets["has_kp3d"][3] and targets["has_kp3d"][0]
    assert (targets["joints2d_smpl"][1:3, :, 2] == 0).all()  # no heatmap targets from a failed fit
    # the good sample: its joints where the true camera puts them, and unchanged by its bad neighbours
    with torch.no_grad():
        joints = body(betas=batch["betas"][:1], pose=batch["pose"][:1]).joints.double() + TRUE_T
    expected = pixels_to_normalised(joints[..., :2] / joints[..., 2:3] * FOCAL + (LOADER_CROP - 1) / 2.0)
    torch.testing.assert_close(targets["joints2d_smpl"][0, :, :2].double(), expected[0], atol=1e-4, rtol=0)
    alone = {k: v[:1] for k, v in loader_batch(body).items()}
    _, own = batch_to_inputs(alone, 64, 16, body, torch.device("cpu"))
    assert own["labels_dropped"] == 0
    # (posing a batch of 4 and of 1 differ in the last float bit)
    torch.testing.assert_close(targets["joints2d_smpl"][:1], own["joints2d_smpl"], rtol=0, atol=1e-6)
    torch.testing.assert_close(targets["kp2d"][:1], own["kp2d"], rtol=0, atol=0)


def test_a_clean_batch_goes_through_untouched():
    from model.training.targets import drop_broken_labels

    batch = loader_batch(FakeBody())
    same, dropped = drop_broken_labels(batch)
    assert dropped == 0 and same is batch


# -- knobs --------------------------------------------------------------------------------------------------

BASE = ["model.init.checkpoint=null", "model.overrides.mean_params=null", "run.device=cpu"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "run.checkpoint_every=0",
            "override 'run.checkpoint_every=0': run.checkpoint_every: must be a positive whole number, got 0",
        ),
        (
            "data.batch_size=0",
            "override 'data.batch_size=0': data.batch_size: must be a positive whole number, got 0",
        ),
        ("run.steps=0", "override 'run.steps=0': run.steps: must be a positive whole number, got 0"),
        ("run.steps=-5", "override 'run.steps=-5': run.steps: must be a positive whole number, got -5"),
        (
            "model.overrides.mean_params=missing/mean_params.npz",
            "missing/mean_params.npz, which does not exist",
        ),
        ("model.init.checkpoint=missing/weights.pt", "model.init.checkpoint names missing/weights.pt"),
    ],
)
def test_bad_knobs_are_one_line_before_anything_runs(tmp_path, capsys, override, message):
    from stages.train import main as train

    out = tmp_path / "run"
    assert train(["--config", str(CONFIG), "--out", str(out), "--no-progress", *BASE, override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train: bad configuration: ") and message in err[0], err
    assert not out.exists()


# -- SIGKILL and --resume -----------------------------------------------------------------------------------


def _train_command(root: Path, out: Path, *extra: str) -> list[str]:
    data = root / "shards" / "synth"
    return [
        sys.executable, "-m", "stages.train", "--config", str(CONFIG), "--out", str(out), "--no-progress",
        f"data.train=[{{path: {data / 'train'}}}]", f"data.val={data / 'val'}",
        f"model.overrides.mean_params={root / 'raw' / 'synth' / 'mean_params.npz'}",
        "model.overrides.image_size=64", "data.batch_size=2", "data.shuffle_buffer=4", "run.device=cpu",
        "run.threads=1", "run.log_every=1", "run.checkpoint_every=3", "model.init.checkpoint=null",
        "optim.iuv_only_steps=0", *extra,
    ]  # fmt: skip


def _steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_sigkill_then_resume_logs_every_step_once_and_cleans_up(shards, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    steps = 40
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = _train_command(shards, out, f"run.steps={steps}")
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    log = out / "train_log.jsonl"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:  # kill once a checkpoint exists and steps after it were logged
            if (out / "last.pt").is_file() and log.is_file() and len(log.read_text().splitlines()) >= 5:
                if len(log.read_text().splitlines()) % 3 != 0:  # not right at a checkpoint boundary
                    break
            if process.poll() is not None:
                pytest.fail("the run ended before it could be killed")
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    assert process.returncode == -signal.SIGKILL
    checkpoint = torch.load(out / "last.pt", weights_only=True)["step"]
    logged = _steps(log) if log.read_text().strip() else []
    assert logged and max(logged) >= checkpoint  # (almost always >: steps logged after the checkpoint)
    (out / ".last.pt.tmp").write_bytes(b"half a checkpoint")  # what a kill during torch.save leaves
    with open(log, "a") as handle:
        handle.write('{"step": 999, "lo')  # and a kill in the middle of a log line

    done = subprocess.run([*command, "--resume"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"resumed from {out / 'last.pt'} at step {checkpoint}" in done.stderr
    assert _steps(log) == list(range(1, steps + 1))
    curve = json.loads((out / "train_curve.json").read_text())
    assert [point["step"] for point in curve] == list(range(1, steps + 1))
    assert not list(out.glob(".*.tmp"))


def test_trim_log_drops_the_steps_after_the_checkpoint_and_a_torn_line(tmp_path):
    from model.training.loop import trim_log

    log = tmp_path / "train_log.jsonl"
    lines = [json.dumps({"step": s, "loss": {"total": 1.0 / s}}) for s in (1, 2, 3, 4, 5)]
    log.write_text("\n".join(lines) + '\n{"step": 6, "lo')
    assert trim_log(log, 3) == 3
    assert log.read_text() == "\n".join(lines[:3]) + "\n"
    assert trim_log(log, 3) == 0 and not list(tmp_path.glob(".*.tmp"))
