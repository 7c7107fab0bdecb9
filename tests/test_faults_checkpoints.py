"""Fault suite, checkpoints: a file that would run code is refused on every path that reads one, a damaged
one is an error naming it, --resume falls back to the previous good checkpoint, and a trusted old file
converts explicitly. Each test asserts what the user sees: the message, the exit code, the files left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from model.training.checkpoint import (
    CorruptCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
    payload_digest,
    previous_path,
    read_torch_file,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "train" / "demo.yaml"
OVERRIDES = [
    "model.overrides.mean_params=null",
    "model.init.checkpoint=null",
    "model.overrides.image_size=64",
    "run.device=cpu",
]


class WritesMarker:
    """Unpickling this calls Path.touch(marker): what a malicious checkpoint does with full unpickling."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    """A file shaped like a checkpoint whose `config` runs code when unpickled."""
    torch.save({"model": {"w": torch.zeros(2)}, "config": WritesMarker(marker), "step": 1}, path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder with a real checkpoint at step 5 (last.pt) and the one it replaced at step 3."""
    from model.training.config import load_train_config
    from model.training.loop import Trainer

    out = tmp_path_factory.mktemp("run")
    trainer = Trainer(load_train_config(CONFIG, OVERRIDES), out)
    trainer.step = 3
    trainer.save()
    trainer.step = 5
    trainer.save()
    return out


def test_the_payload_is_live_when_fully_unpickled(tmp_path):
    """The oracle for the refusal tests: torch.load(weights_only=False) of the file does write the marker."""
    marker = tmp_path / "marker"
    evil = evil_checkpoint(tmp_path / "evil.pt", marker)
    code = f"import torch; torch.load({str(evil)!r}, weights_only=False)"
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert marker.exists()


def test_a_payload_is_refused_on_every_path_and_never_runs(tmp_path, capsys):
    from stages.evaluate import main as evaluate
    from stages.export_weights import main as export_weights
    from stages.predict import main as predict
    from stages.train import main as train

    marker = tmp_path / "marker"
    evil = evil_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(
        UnsafeCheckpointError, match=r"evil\.pt: refused: .*Unsupported global.*--convert-trusted"
    ):
        read_torch_file(evil)

    def refused(code: int, stage: str) -> None:
        err = capsys.readouterr().err
        assert code == 2, (stage, err)
        assert "evil.pt" in err and "refused" in err and "--convert-trusted" in err, (stage, err)
        assert not marker.exists(), stage

    # --resume reads OUT/last.pt: the planted file under that name
    planted = tmp_path / "evil_run"
    planted.mkdir()
    (planted / "last.pt").write_bytes(evil.read_bytes())
    code = train(["--config", str(CONFIG), "--out", str(planted), "--resume", "--no-progress", *OVERRIDES])
    err = capsys.readouterr().err
    assert code == 2 and "last.pt: refused" in err and "--convert-trusted" in err and not marker.exists(), err
    assert len(err.strip().splitlines()[-1]) > 0 and "Traceback" not in err

    init = [*OVERRIDES[:1], f"model.init.checkpoint={evil}", *OVERRIDES[2:]]
    refused(train(["--config", str(CONFIG), "--out", str(tmp_path / "init"), "--no-progress", *init]), "init")
    refused(export_weights([str(evil), "--out", str(tmp_path / "w.pt")]), "export")
    assert not (tmp_path / "w.pt").exists()
    shards = tmp_path / "shards" / "synth" / "val"
    shards.mkdir(parents=True)
    (shards / "index.json").write_text("{}")
    args = ["--checkpoint", str(evil), "--dataset", "synth", "--shards", str(tmp_path / "shards")]
    refused(evaluate([*args, "--out", str(tmp_path / "eval"), "--device", "cpu"]), "evaluate")
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    code = predict([str(image), "--checkpoint", str(evil), "--out", str(tmp_path / "pred"), "--no-progress"])
    refused(code, "predict")
    assert not (tmp_path / "pred").exists() or not any((tmp_path / "pred").iterdir())


def test_checkpoints_hold_plain_data_and_load_with_weights_only(run_dir):
    payload = torch.load(run_dir / "last.pt", weights_only=True)  # raises if anything but plain data
    assert payload["step"] == 5 and isinstance(payload["config"], dict)
    assert isinstance(payload["rng"]["numpy"]["key"], torch.Tensor)
    assert payload["integrity"]["sha256"] == payload_digest(payload)
    assert torch.load(previous_path(run_dir / "last.pt"), weights_only=True)["step"] == 3


def test_the_committed_demo_weights_still_load():
    """weights/demo_iuv_estimator.pt predates the digest: accepted as legacy because it is plain data."""
    from model.training.init import read_state_dict

    state = read_state_dict(REPO / "weights" / "demo_iuv_estimator.pt")
    assert any(k.startswith("iuv.") for k in state) and any(k.startswith("partial_heads.") for k in state)


def test_digest_sees_one_changed_element_and_not_the_key_order():
    a = {"model": {"x": torch.arange(6.0), "y": torch.ones(2, 2)}, "step": 3}
    b = {"step": 3, "model": {"y": torch.ones(2, 2), "x": torch.arange(6.0)}}
    assert payload_digest(a) == payload_digest(b)
    b["model"]["x"][4] = 4.000001
    assert payload_digest(a) != payload_digest(b)
    assert payload_digest(a) != payload_digest({**a, "step": 4})


def flip_bytes_inside(path: Path, tensor: torch.Tensor, count: int = 64) -> None:
    """Flips `count` bytes in the middle of `tensor`'s stored bytes in `path` (torch zips store uncompressed)."""
    data = bytearray(path.read_bytes())
    raw = tensor.contiguous().view(torch.uint8).numpy().tobytes()
    at = bytes(data).find(raw)
    assert at >= 0 and len(raw) > 2 * count
    start = at + len(raw) // 2
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_64_flipped_bytes_are_refused_naming_the_file(run_dir, tmp_path, capsys):
    damaged = tmp_path / "run"
    damaged.mkdir()
    (damaged / "last.pt").write_bytes((run_dir / "last.pt").read_bytes())
    state = torch.load(damaged / "last.pt", weights_only=True)["model"]
    biggest = max(state.values(), key=lambda t: t.numel())
    flip_bytes_inside(damaged / "last.pt", biggest)
    torch.load(damaged / "last.pt", weights_only=True)  # torch itself reads the damaged tensor silently
    with pytest.raises(CorruptCheckpointError, match=r"run/last\.pt: damaged checkpoint"):
        load_checkpoint(damaged / "last.pt")
    from stages.train import main as train

    before = (damaged / "last.pt").read_bytes()
    code = train(["--config", str(CONFIG), "--out", str(damaged), "--resume", "--no-progress", *OVERRIDES])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "last.pt: damaged checkpoint" in err[-1] and "last.prev.pt kept" in err[-1]
    assert (damaged / "last.pt").read_bytes() == before  # nothing moved or rewritten without a fallback


def test_a_truncated_last_pt_is_one_line_and_resume_falls_back_to_the_previous(run_dir, tmp_path, capsys):
    from model.training.config import load_train_config
    from model.training.loop import Trainer
    from stages.train import main as train

    alone = tmp_path / "alone"
    alone.mkdir()
    good = (run_dir / "last.pt").read_bytes()
    (alone / "last.pt").write_bytes(good[: len(good) // 2])
    code = train(["--config", str(CONFIG), "--out", str(alone), "--resume", "--no-progress", *OVERRIDES])
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        code == 2 and err[-1].startswith("train: ") and "alone/last.pt: not a readable checkpoint" in err[-1]
    )
    assert "Traceback" not in "\n".join(err)

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "last.pt").write_bytes(good[: len(good) // 2])
    previous = (run_dir / "last.prev.pt").read_bytes()
    (kept / "last.prev.pt").write_bytes(previous)
    trainer = Trainer(load_train_config(CONFIG, OVERRIDES), kept)
    assert trainer.resume() and trainer.step == 3 and trainer.resumed_from == kept / "last.prev.pt"
    assert (kept / "last.pt.damaged").is_file() and not (kept / "last.pt").exists()
    trainer.save()  # the next checkpoint does not push the good previous one out
    assert (kept / "last.prev.pt").read_bytes() == previous


def test_a_trusted_old_checkpoint_converts_explicitly(run_dir, tmp_path, capsys):
    """A file of the old format (numpy RNG state as an array, no digest) is refused, then converted on request."""
    from stages.export_weights import main as export_weights

    payload = torch.load(run_dir / "last.pt", weights_only=True)
    payload.pop("integrity")
    np.random.seed(7)  # noqa: NPY002
    payload["rng"]["numpy"] = np.random.get_state()  # noqa: NPY002
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    with pytest.raises(UnsafeCheckpointError, match="numpy"):
        load_checkpoint(old)
    new = tmp_path / "new.pt"
    assert export_weights(["--convert-trusted", str(old), str(new)]) == 0
    converted = load_checkpoint(new)
    assert converted["step"] == 5 and "integrity" in converted
    from model.training.checkpoint import set_rng_state

    set_rng_state(converted["rng"])
    drawn = np.random.rand(3)  # noqa: NPY002
    np.random.seed(7)  # noqa: NPY002
    np.testing.assert_array_equal(drawn, np.random.rand(3))  # noqa: NPY002
    assert export_weights(["--convert-trusted", str(old), str(old)]) == 2
    assert "not over it" in capsys.readouterr().err


def test_save_refuses_objects_that_are_not_plain_data(tmp_path):
    with pytest.raises(TypeError, match=r"x\.pt\['config'\] is a pathlib"):
        save_checkpoint(tmp_path / "x.pt", {"model": {}, "config": Path("a"), "step": 0})
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_is_self_contained_without_its_mean_params_file(tmp_path):
    """The training config names mean_params.npz; a model used elsewhere takes the means from its weights."""
    from model.training.checkpoint import model_from_checkpoint
    from model.training.config import load_train_config
    from model.training.loop import Trainer

    means = tmp_path / "mean_params.npz"
    rng = np.random.default_rng(0)
    block = np.tile(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), (24, 1, 1)).reshape(-1)
    np.savez(means, pose=block, shape=rng.normal(size=10), cam=np.array([0.8, 0.1, -0.1]))
    overrides = [f"model.overrides.mean_params={means}", *OVERRIDES[1:]]
    trainer = Trainer(load_train_config(CONFIG, overrides), tmp_path / "run")
    trainer.save()
    means.unlink()  # the checkpoint travels, the data folder does not
    network, config = model_from_checkpoint(tmp_path / "run" / "last.pt")
    assert config["resolved_model"]["mean_params"] == str(means)
    for name in ("mean_betas", "mean_cam", "mean_rotation"):
        torch.testing.assert_close(getattr(network, name), getattr(trainer.network, name), rtol=0, atol=0)
