"""The presets, every ablation and every training config resolve to the values main had before the config
systems merged into model/config_schema.py (issue 21): tests/fixtures_data/config_snapshot.json was dumped
from commit ddbf5dc, before that change, with

    config_to_dict(paper_config() | tiny_config() | ablation(name, base))   for base in paper, tiny
    config_as_dict(load_train_config(path))                                 for configs/train/*.yaml, None

so it is an oracle independent of the code under test: a default that moves (a loss weight, a RoI constant)
changes a trained network and the demo's dvc.lock, and fails here. A deliberate change of a default
regenerates the file the same way and says so in its commit.

The network configs must match exactly. The training sections may gain fields (a new knob with a default),
but every value the snapshot has must be unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.config import ABLATIONS, ablation, config_to_dict, paper_config, tiny_config
from model.training.config import config_as_dict, load_train_config

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = json.loads((REPO / "tests" / "fixtures_data" / "config_snapshot.json").read_text())


def _plain(x):
    """JSON's view of a value (tuples as lists), so that the comparison sees what a checkpoint stores."""
    return json.loads(json.dumps(x))


def _missing_or_changed(expected, got, key=""):
    """Dotted keys where `got` lacks or differs from a value of `expected` (extra keys in `got` are fine)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        out = []
        for name, value in expected.items():
            if name not in got:
                out.append(f"{key}{name} (missing)")
            else:
                out += _missing_or_changed(value, got[name], f"{key}{name}.")
        return out
    return [] if expected == got else [f"{key.rstrip('.')}: {expected!r} -> {got!r}"]


@pytest.mark.parametrize(("name", "build"), [("paper", paper_config), ("tiny", tiny_config)])
def test_presets_are_unchanged(name, build):
    assert _plain(config_to_dict(build())) == SNAPSHOT["presets"][name]


def test_every_ablation_is_unchanged():
    assert sorted(ABLATIONS) == sorted(SNAPSHOT["ablations"]["paper"])
    for base in ("paper", "tiny"):
        for name in ABLATIONS:
            got = _plain(config_to_dict(ablation(name, base)))
            assert got == SNAPSHOT["ablations"][base][name], (base, name)


@pytest.mark.parametrize("name", sorted(SNAPSHOT["train_configs"]))
def test_training_configs_are_unchanged(name):
    got = _plain(config_as_dict(load_train_config(REPO / "configs" / "train" / name)))
    expected = SNAPSHOT["train_configs"][name]
    assert got["resolved_model"] == expected["resolved_model"]
    assert _missing_or_changed(expected, got) == []


def test_training_defaults_are_unchanged():
    got = _plain(config_as_dict(load_train_config(None)))
    assert got["resolved_model"] == SNAPSHOT["train_defaults"]["resolved_model"]
    assert _missing_or_changed(SNAPSHOT["train_defaults"], got) == []


def test_the_comparison_sees_a_changed_weight():
    """The oracle can fail: one loss weight off is reported by its key path."""
    changed = json.loads(json.dumps(SNAPSHOT["train_configs"]["demo.yaml"]))
    changed["resolved_model"]["loss"]["kp3d"] = 31.0
    assert _missing_or_changed(SNAPSHOT["train_configs"]["demo.yaml"], changed) == [
        "resolved_model.loss.kp3d: 30.0 -> 31.0"
    ]
