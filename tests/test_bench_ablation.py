"""The ablation runner's variants turn into the training configs they name (bench/ablation.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.ablation import VARIANTS, markdown, overrides_for
from model.training.config import load_train_config

REPO = Path(__file__).resolve().parents[1]


# What each named variant is, written from the paper's Section 5.4 and the variant's name, not from VARIANTS:
# name -> (the tables it is a row of, decompose, refinement variant, learnable edges, drop kind). The D-Net
# table compares the global-only baseline with D-Net, both without a drop; Table 8 the drops on D-Net; Tables
# 9-10 the refinements, all with PartDrop (the demo's drop) and D-Net + PartDrop as the no-refinement row.
# None: the demo's own value.
EXPECTED = {
    "baseline_global_only": ({"decompose"}, False, None, None, "none"),
    "dnet_no_drop": ({"decompose", "drop"}, True, "none", None, "none"),
    "dnet_dropout": ({"drop"}, True, "none", None, "dropout"),
    "dnet_dropblock": ({"drop"}, True, "none", None, "dropblock"),
    "dnet_partdrop": ({"drop", "refine"}, True, "none", None, "partdrop"),
    "refine_direct": ({"refine"}, True, "direct", None, "partdrop"),
    "refine_position_implicit": ({"refine"}, True, "position_implicit", None, "partdrop"),
    "refine_position_aided": ({"refine"}, True, "position_aided", None, "partdrop"),
    "refine_position_aided_fixed_edges": ({"refine"}, True, "position_aided", False, "partdrop"),
}


def _config(variant: dict, from_scratch: bool):
    return load_train_config(
        REPO / "configs" / "train" / "demo.yaml",
        overrides_for(variant, Path("shards"), 300, Path("mean.npz"), from_scratch),
    )


def test_the_variants_are_the_papers():
    assert set(VARIANTS) == set(EXPECTED)
    for name, (tables, *_) in EXPECTED.items():
        assert set(VARIANTS[name][0]) == tables, name


@pytest.mark.parametrize("from_scratch", [False, True])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_variant_sets_its_switches_and_an_equal_budget(name, from_scratch):
    cfg = _config(VARIANTS[name][1], from_scratch)
    assert cfg.run.steps == 300 and list(cfg.optim.lr_milestones) == [225]
    if from_scratch:  # each variant trains its own estimator, IUV-only first
        assert cfg.model.frozen_modules == [] and cfg.optim.iuv_only_steps == 42
    else:  # every variant shares the demo's pretrained estimator, fixed
        assert Path(cfg.model.init.checkpoint).is_file() and "iuv" in cfg.model.frozen_modules
    # the demo's network with the named switches and nothing else changed
    demo = _config({}, from_scratch).danet_config()
    _, decompose, refine, edges, drop = EXPECTED[name]
    expected = dataclasses.replace(
        demo,
        decompose=decompose,
        refine=dataclasses.replace(
            demo.refine,
            variant=refine or demo.refine.variant,
            learnable_edges=demo.refine.learnable_edges if edges is None else edges,
        ),
        drop=dataclasses.replace(demo.drop, kind=drop),
    )
    assert cfg.danet_config() == expected
    assert demo.refine.learnable_edges and demo.drop.kind == "partdrop"  # what "the demo's value" means here


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
