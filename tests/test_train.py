"""The trainer: configuration, exact resume, the IUV-only phase, non-finite losses, and evaluation outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.training.config import load_train_config
from model.training.loop import FINAL_MODEL, LAST_CHECKPOINT, Trainer, TrainingError
from tests.fixtures_data.synth_chain import synth_shards

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """A few synthetic samples rendered into shards (the demo chain at toy size)."""
    return synth_shards(tmp_path_factory.mktemp("data"), n=20, size=96, crop_size=96)


def tiny_config(shards: Path, *overrides: str):
    return load_train_config(
        REPO / "configs" / "train" / "demo.yaml",
        [
            f"data.train=[{{path: {shards / 'shards' / 'synth' / 'train'}}}]",
            f"data.val={shards / 'shards' / 'synth' / 'val'}",
            f"model.overrides.mean_params={shards / 'raw' / 'synth' / 'mean_params.npz'}",
            "model.overrides.image_size=64",
            "data.batch_size=4",
            "data.num_workers=0",
            "data.shuffle_buffer=8",
            "run.device=cpu",
            "run.log_every=1",
            "model.init.checkpoint=null",  # the trainer's mechanics from scratch (the demo's init: below)
            *overrides,
        ],
    )


def test_config_errors_name_the_offending_key():
    with pytest.raises(
        ValueError, match=r"^override 'optim\.learning_rate=1': optim\.learning_rate: unknown key"
    ):
        load_train_config(None, ["optim.learning_rate=1"])
    with pytest.raises(ValueError, match="key=value"):
        load_train_config(None, ["optim.lr"])
    with pytest.raises(
        ValueError, match=r"^override 'run\.steps=many': run\.steps: expected a number, got 'many'"
    ):
        load_train_config(None, ["run.steps=many"])
    with pytest.raises(
        ValueError, match=r"model\.ablation: unknown ablation 'nonsense'; expected one of \['global_only'"
    ):
        load_train_config(None, ["model.ablation=nonsense"])
    with pytest.raises(
        ValueError, match=r"optim\.lr_schedule: expected one of \['step', 'cosine'\], got 'cos'"
    ):
        load_train_config(None, ["optim.lr_schedule=cos"])
    config = load_train_config(
        REPO / "configs" / "train" / "demo.yaml", ["optim.lr=3e-4", "model.ablation=dnet"]
    )
    assert config.optim.lr == 3e-4 and config.danet_config().refine.variant == "none"


def test_cosine_schedule_falls_to_the_final_factor_and_resumes_where_it_left_off():
    from model.training.config import OptimConfig
    from model.training.schedule import build_scheduler

    def run(scheduler, optimizer, steps):
        rates = []
        for _ in range(steps):
            optimizer.step()
            scheduler.step()
            rates.append(optimizer.param_groups[0]["lr"])
        return rates

    cfg = OptimConfig(lr=0.1, lr_schedule="cosine", lr_final_factor=0.01)

    def fresh() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
        return optimizer, build_scheduler(optimizer, cfg, total_steps=100)

    optimizer, scheduler = fresh()
    rates = run(scheduler, optimizer, 120)
    assert rates[49] == pytest.approx(0.1 * (0.01 + 0.99 * 0.5))  # half-way: half-way down
    assert rates[99] == pytest.approx(0.001) and rates[119] == pytest.approx(0.001)  # floor after the end
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    optimizer, scheduler = fresh()
    run(scheduler, optimizer, 30)
    resumed_optimizer, resumed = fresh()
    resumed.load_state_dict(scheduler.state_dict())
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    assert run(resumed, resumed_optimizer, 20) == pytest.approx(rates[30:50])


def _parameters(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.network.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_resume_continues_exactly(shards, tmp_path, monkeypatch, schedule):
    steps = (
        "run.steps=4",
        "run.checkpoint_every=2",
        "optim.iuv_only_steps=1",
        f"optim.lr_schedule={schedule}",
    )
    straight = Trainer(tiny_config(shards, *steps), tmp_path / "straight")
    straight.run(progress=False)

    first = Trainer(tiny_config(shards, *steps), tmp_path / "resumed")
    original_step = first.train_step

    def crash_after_the_checkpoint(batch):
        if first.step == 3:
            raise RuntimeError("simulated crash")
        return original_step(batch)

    monkeypatch.setattr(first, "train_step", crash_after_the_checkpoint)
    with pytest.raises(RuntimeError, match="simulated crash"):
        first.run(progress=False)
    second = Trainer(tiny_config(shards, *steps), tmp_path / "resumed")
    assert second.resume() and second.step == 2
    second.run(progress=False)

    expected, got = _parameters(straight), _parameters(second)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)
    for name in (LAST_CHECKPOINT, FINAL_MODEL, "train_metrics.json", "train_curve.json"):
        assert (tmp_path / "resumed" / name).is_file()


@pytest.mark.slow
def test_iuv_only_phase_leaves_the_streams_untouched(shards, tmp_path):
    trainer = Trainer(tiny_config(shards, "run.steps=2", "optim.iuv_only_steps=5"), tmp_path)
    before = _parameters(trainer)
    trainer.run(progress=False)
    after = _parameters(trainer)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("iuv.") for k in changed)
    assert not any(k.startswith(("global_stream.", "local_streams.", "refine.")) for k in changed)


@pytest.mark.slow
def test_init_copies_named_modules_and_freeze_keeps_them_fixed(shards, tmp_path):
    source = Trainer(tiny_config(shards, "run.steps=2", "optim.iuv_only_steps=2"), tmp_path / "pretrain")
    source.run(progress=False)
    pretrained = _parameters(source)
    from stages.export_weights import main as export_weights

    weights = tmp_path / "estimator.pt"
    checkpoint = str(tmp_path / "pretrain" / FINAL_MODEL)
    assert export_weights([checkpoint, "--modules", "iuv", "partial_heads", "--out", str(weights)]) == 0
    assert export_weights([checkpoint, "--modules", "irv", "--out", str(tmp_path / "x.pt")]) == 2
    assert weights.stat().st_size < (tmp_path / "pretrain" / FINAL_MODEL).stat().st_size / 2
    init = f"model.init.checkpoint={weights}"
    trainer = Trainer(
        tiny_config(shards, init, "model.init.freeze=true", "optim.iuv_only_steps=0", "run.steps=3"),
        tmp_path / "run",
    )
    loaded = _parameters(trainer)
    fresh = _parameters(Trainer(tiny_config(shards), tmp_path / "fresh"))
    for key, value in loaded.items():
        if key.startswith(("iuv.", "partial_heads.")):
            torch.testing.assert_close(value, pretrained[key], rtol=0, atol=0, msg=key)
        else:  # everything else starts as a fresh run of the same seed would
            torch.testing.assert_close(value, fresh[key], rtol=0, atol=0, msg=key)
    trainer.run(progress=False)
    after = _parameters(trainer)
    changed = {k for k in loaded if not torch.equal(loaded[k], after[k])}
    # frozen: weights and BatchNorm running statistics stay as loaded; the streams learn
    assert not any(k.startswith(("iuv.", "partial_heads.")) for k in changed)
    assert any(k.startswith("global_stream.") for k in changed)
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in optimised for p in trainer.network.iuv.parameters())


def test_init_errors_name_the_file_and_the_module(shards, tmp_path):
    missing = tmp_path / "nothing.pt"
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        Trainer(tiny_config(shards, f"model.init.checkpoint={missing}"), tmp_path / "a")
    other = tmp_path / "other.pt"
    torch.save({"iuv.stem.weight": torch.zeros(1)}, other)
    with pytest.raises(KeyError, match=r"no module 'irv'.*'iuv'"):
        Trainer(
            tiny_config(shards, f"model.init.checkpoint={other}", "model.init.modules=[irv]"), tmp_path / "b"
        )
    with pytest.raises(KeyError, match=r"other.pt lacks \d+ weight\(s\) of 'iuv', e.g. iuv\."):
        Trainer(tiny_config(shards, f"model.init.checkpoint={other}"), tmp_path / "c")
    with pytest.raises(KeyError, match="other.pt has no weights for module 'partial_heads'"):
        Trainer(
            tiny_config(shards, f"model.init.checkpoint={other}", "model.init.modules=[partial_heads]"),
            tmp_path / "c",
        )
    wide = tmp_path / "wide.pt"
    state = Trainer(
        tiny_config(shards, "model.overrides.iuv.head_channels=8"), tmp_path / "d"
    ).network.state_dict()
    torch.save(state, wide)
    with pytest.raises(ValueError, match=r"wide.pt: partial_heads\..* has shape"):
        Trainer(
            tiny_config(shards, f"model.init.checkpoint={wide}", "model.init.modules=[partial_heads]"),
            tmp_path / "e",
        )
    with pytest.raises(ValueError, match="set optim.iuv_only_steps=0"):
        tiny_config(
            shards, f"model.init.checkpoint={wide}", "model.init.freeze=true", "optim.iuv_only_steps=5"
        )


@pytest.mark.slow
def test_repeated_nonfinite_losses_stop_the_run_and_keep_the_checkpoint(shards, tmp_path, monkeypatch):
    trainer = Trainer(
        tiny_config(shards, "run.steps=2", "run.checkpoint_every=2", "run.max_nonfinite=3"), tmp_path
    )
    trainer.run(progress=False)
    good = (tmp_path / LAST_CHECKPOINT).read_bytes()

    import model.training.loop as loop

    def nan_total(terms, cfg, only=None):
        return torch.tensor(float("nan"), requires_grad=True)

    monkeypatch.setattr(loop, "weighted_total", nan_total)
    again = Trainer(
        tiny_config(shards, "run.steps=4", "run.checkpoint_every=2", "run.max_nonfinite=3"), tmp_path
    )
    assert again.resume()
    with pytest.raises(TrainingError, match="4 consecutive non-finite losses"):
        again.run(progress=False)
    assert (tmp_path / LAST_CHECKPOINT).read_bytes() == good


@pytest.mark.slow
def test_train_then_evaluate_writes_metrics_and_pictures(shards, tmp_path):
    from stages.evaluate import main as evaluate
    from stages.train import main as train

    config = REPO / "configs" / "train" / "demo.yaml"
    overrides = [
        f"data.train=[{{path: {shards / 'shards' / 'synth' / 'train'}}}]",
        f"model.overrides.mean_params={shards / 'raw' / 'synth' / 'mean_params.npz'}",
        "model.overrides.image_size=64",
        "data.batch_size=4",
        "data.num_workers=0",
        "run.steps=3",
        "run.device=cpu",
        f"model.init.checkpoint={REPO / 'weights' / 'demo_iuv_estimator.pt'}",
    ]  # the shipped estimator weights fit the demo network
    assert train(["--config", str(config), "--out", str(tmp_path / "run"), "--no-progress", *overrides]) == 0
    args = ["--checkpoint", str(tmp_path / "run" / "model.pt"), "--dataset", "synth", "--split", "val"]
    assert evaluate([*args, "--shards", str(shards / "shards"), "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in (
        "mpjpe",
        "pa_mpjpe",
        "pve",
        "pve_s",
        "pve_p",
        "pve_scale_aligned",
        "pve_procrustes",
        "baseline_pa_mpjpe",
        "pa_mpjpe_ratio_to_mean_pose",
    ):
        assert metrics[key] is not None and metrics[key] >= 0, key
    for key in ("iuv_part_accuracy", "iuv_segment_accuracy", "iuv_foreground_iou"):
        assert 0 <= metrics[key] <= 100, key
    assert metrics["iuv_part_accuracy"] <= metrics["iuv_segment_accuracy"]
    assert metrics["pve_procrustes"] <= metrics["pve_scale_aligned"] + 1e-6, "a rotation can only lower it"
    assert metrics["protocol"]["name"] == "synth" and metrics["protocol"]["joint_regressor"] == "h36m17"
    assert metrics["protocol"]["comparable_with_papers"] is False  # the open body is not SMPL
    # values: the mean-pose baseline as an independent numpy computation on the same val samples
    from pipeline.body import load_body_model
    from tests.fixtures_data.eval_oracle import mean_pose_errors, split_targets

    body = load_body_model("anny-smpl24")
    val = split_targets(shards / "shards" / "synth" / "val", body)
    mpjpe, pa = mean_pose_errors(body, shards / "raw" / "synth" / "mean_params.npz", val)
    assert metrics["samples"] == len(mpjpe) == 2
    assert metrics["baseline_mpjpe"] == pytest.approx(mpjpe.mean(), abs=0.006)
    assert metrics["baseline_pa_mpjpe"] == pytest.approx(pa.mean(), abs=0.006)
    ratio = metrics["pa_mpjpe_ratio_to_mean_pose"]
    assert ratio == round(metrics["pa_mpjpe"] / metrics["baseline_pa_mpjpe"], 3)
    short = {"pa_mpjpe": "pa_mpjpe", "mpjpe": "mpjpe", "pve_p": "pve_p",
             "vs_mean_pose": "pa_mpjpe_ratio_to_mean_pose", "part_acc": "iuv_part_accuracy"}  # fmt: skip
    headline = json.loads((tmp_path / "eval" / "headline.json").read_text())
    assert headline == {name: metrics[key] for name, key in short.items()}  # dvc metrics show's numbers
    assert (tmp_path / "eval" / "examples.png").stat().st_size > 1000
    oracle = ["--shards", str(shards / "shards"), "--out", str(tmp_path / "oracle"), "--ground-truth-maps"]
    assert evaluate([*args, *oracle]) == 0
    bound = json.loads((tmp_path / "oracle" / "metrics.json").read_text())
    assert bound["ground_truth_maps"] is True and "ground_truth_maps" not in metrics
    assert bound["baseline_pa_mpjpe"] == metrics["baseline_pa_mpjpe"]  # same split, same baseline
    errors = ("mpjpe", "pa_mpjpe", "pve", "pve_s", "pve_p")
    assert [bound[k] for k in errors] != [metrics[k] for k in errors]  # the streams read other maps
    assert train(["--config", str(config), "--out", str(tmp_path / "bad"), "optim.nonsense=1"]) == 2


def test_pixels_to_normalised_matches_the_camera_convention():
    from model.camera import project
    from model.training.targets import pixels_to_normalised

    points = torch.tensor([[[0.1, -0.2, 0.0]]])
    cam = torch.tensor([[0.9, 0.05, -0.02]])
    normalised = project(points, cam, 5000.0, 224.0)
    depth = 2 * 5000.0 / (224.0 * 0.9)
    pixels = (points[..., :2] + cam[:, None, 1:]) / depth * 5000.0 + (224 - 1) / 2.0
    torch.testing.assert_close(pixels_to_normalised(pixels), normalised)


def test_coco_keypoint_ap_is_perfect_for_exact_predictions_and_drops_with_error():
    import numpy as np

    from model.evaluation import coco_keypoint_ap, mask_area

    rng = np.random.default_rng(0)
    samples = []
    for _ in range(5):
        gt = np.concatenate([rng.uniform(40, 180, (17, 2)), np.ones((17, 1))], axis=1)
        samples.append({"gt": gt, "pred": gt[:, :2].copy(), "area": 120.0 * 60.0})
    assert coco_keypoint_ap(samples)["AP"] == 100.0
    for sample in samples:
        sample["pred"] = sample["pred"] + rng.normal(0, 25, (17, 2))
    assert coco_keypoint_ap(samples)["AP"] < 50.0
    assert mask_area(json.dumps([[0, 0, 10, 0, 10, 10, 0, 10]])) == 100.0
    assert mask_area(None) is None
