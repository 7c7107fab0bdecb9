"""The ablation runner's variants turn into the training configs they name (bench/ablation.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ablation import VARIANTS, markdown, overrides_for
from model.training.config import load_train_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("from_scratch", [False, True])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_sets_its_switches_and_an_equal_budget(name, from_scratch):
    _, variant = VARIANTS[name]
    cfg = load_train_config(
        REPO / "configs" / "train" / "demo.yaml",
        overrides_for(variant, Path("shards"), 300, Path("mean.npz"), from_scratch),
    )
    net = cfg.danet_config()
    assert cfg.run.steps == 300 and list(cfg.optim.lr_milestones) == [225]
    if from_scratch:  # each variant trains its own estimator, IUV-only first
        assert cfg.model.frozen_modules == [] and cfg.optim.iuv_only_steps == 42
    else:  # every variant shares the demo's pretrained estimator, fixed
        assert Path(cfg.model.init.checkpoint).is_file() and "iuv" in cfg.model.frozen_modules
    assert net.decompose == (name != "baseline_global_only")
    for section, values in variant.items():
        if isinstance(values, dict):
            for key, value in values.items():
                assert getattr(getattr(net, section), key) == value


def test_markdown_groups_rows_by_table_and_names_the_mean_pose():
    row = {"mpjpe": 1, "pa_mpjpe": 2, "pa_mpjpe_ratio_to_mean_pose": 0.5, "pve": 3, "pve_p": 4}
    rows = [
        {"variant": "dnet_no_drop", "tables": ["decompose", "drop"], "baseline_pa_mpjpe": 4, **row},
        {"variant": "refine_direct", "tables": ["refine"], "baseline_pa_mpjpe": 4, **row},
    ]
    text = markdown(rows)
    assert text.count("| dnet_no_drop |") == 2  # a row of the decomposition table and of the drop table
    assert text.index("D-Net") < text.index("Table 8") < text.index("Tables 9-10")
    assert text.rindex("| dnet_no_drop |") < text.index("Tables 9-10") < text.index("| refine_direct |")
    assert "PA-MPJPE 4 mm" in text
