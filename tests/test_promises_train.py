"""The README's training promises: `--resume` through the command line continues exactly (an interrupted run
resumed from the CLI trains only the remaining steps and ends with the weights of an uninterrupted run), and
a single non-finite step is skipped, the run recovers and the network keeps nothing of the bad step."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import model.training.loop as loop
from model.training.loop import Trainer
from tests.test_train import shards, tiny_config  # noqa: F401 - the module-scoped toy shards

REPO = Path(__file__).resolve().parents[1]


def cli_args(shards: Path, out: Path, *extra: str) -> list[str]:  # noqa: F811
    return [
        "--config", str(REPO / "configs" / "train" / "demo.yaml"), "--out", str(out), "--no-progress",
        f"data.train=[{{path: {shards / 'shards' / 'synth' / 'train'}}}]",
        f"data.val={shards / 'shards' / 'synth' / 'val'}",
        f"model.overrides.mean_params={shards / 'raw' / 'synth' / 'mean_params.npz'}",
        "model.overrides.image_size=64", "model.init.checkpoint=null", "data.batch_size=4",
        "data.num_workers=0", "data.shuffle_buffer=8", "run.device=cpu", "run.log_every=1",
        "run.steps=4", "run.checkpoint_every=2", "optim.iuv_only_steps=1", *extra,
    ]  # fmt: skip


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def logged_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_resume_through_the_cli_trains_only_the_rest_and_ends_as_an_uninterrupted_run(
    shards,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
):
    from stages.train import main as train

    assert train(cli_args(shards, tmp_path / "straight")) == 0
    trained_at: list[int] = []  # the step counter at each optimiser step the CLI runs
    crash_at = {2}  # the first step after the step-2 checkpoint
    original = loop.Trainer.train_step

    def train_step(self, batch):
        trained_at.append(self.step)
        if self.step in crash_at:
            crash_at.clear()
            raise RuntimeError("simulated crash")
        return original(self, batch)

    monkeypatch.setattr(loop.Trainer, "train_step", train_step)
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cli_args(shards, out))
    trained_at.clear()
    capsys.readouterr()
    assert train([*cli_args(shards, out), "--resume"]) == 0
    assert f"resumed from {out / 'last.pt'} at step 2" in capsys.readouterr().err
    assert trained_at == [2, 3], "the resumed run trains the two remaining steps only"
    assert logged_steps(out) == [1, 2, 3, 4]
    expected, got = weights(tmp_path / "straight" / "model.pt"), weights(out / "model.pt")
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of the network (not the fixed body model's), and the optimiser's per-parameter state."""
    state = trainer.network.state_dict()
    out = {f"net.{k}": v.detach().clone() for k, v in state.items() if not k.startswith("body.")}
    for i, state in trainer.optimizer.state_dict()["state"].items():
        out.update({f"opt.{i}.{k}": torch.as_tensor(v).clone() for k, v in state.items()})
    return out


@pytest.mark.slow
@pytest.mark.parametrize("where", ["loss", "activations"])
def test_a_single_nonfinite_step_is_skipped_and_training_recovers(
    shards,  # noqa: F811
    tmp_path,
    monkeypatch,
    where,
):
    """Two single bad steps (the second and the fourth batch) in a 4-step run with run.max_nonfinite=1: each is
    skipped without touching the network (weights, BatchNorm statistics) or the optimiser, the next batch
    trains normally, and since the count of consecutive bad steps restarts after a good one the run does
    not stop. "loss": the trainer's own injection (DANET_DEBUG_NONFINITE) makes the loss NaN; "activations":
    a NaN image, so every activation (and BatchNorm's batch statistics) is NaN too."""
    bad_steps = [1, 3]  # the step counter when the bad batch comes
    if where == "loss":
        monkeypatch.setenv("DANET_DEBUG_NONFINITE", ",".join(f"{s}:0" for s in bad_steps))
    cfg = tiny_config(
        shards, "run.steps=4", "run.checkpoint_every=4", "run.max_nonfinite=1", "run.val_samples=0"
    )
    trainer = Trainer(cfg, tmp_path)
    if where == "activations":
        poisoned = set(bad_steps)

        def nan_image(module, args, kwargs):
            if trainer.step in poisoned:
                poisoned.discard(trainer.step)
                return (args[0] * float("nan"), *args[1:]), kwargs
            return None

        trainer.network.register_forward_pre_hook(nan_image, with_kwargs=True)
    calls = []
    original = trainer.train_step

    def spy(batch):
        before, lr = _state(trainer), trainer.optimizer.param_groups[0]["lr"]
        terms = original(batch)
        calls.append((trainer.step, terms, before, _state(trainer), lr))
        return terms

    monkeypatch.setattr(trainer, "train_step", spy)
    summary = trainer.run(progress=False)

    assert [step for step, terms, *_ in calls if terms is None] == bad_steps
    assert [step for step, terms, *_ in calls] == [0, 1, 1, 2, 3, 3]  # a bad batch, then the next one
    for step, terms, before, after, lr in calls:
        if terms is None:  # skipped: nothing of the bad step is kept
            changed = [k for k in before if not torch.equal(before[k], after[k])]
            assert changed == [], (step, changed[:5])
            assert trainer.optimizer.param_groups[0]["lr"] > 0 and lr > 0
        else:
            assert math.isfinite(terms["total"]), (step, terms)
            assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("net."))
    assert summary["steps"] == 4 and summary["nonfinite_skipped"] == 2
    assert math.isfinite(summary["final_loss"])
    assert all(
        torch.isfinite(v).all() for v in trainer.network.state_dict().values() if v.is_floating_point()
    )
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]["total"]) for r in records)
