"""The paper's two training mixtures: dataset names that exist in manifests/sources, the paper's shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.training.config import load_train_config
from pipeline.datasets.sources import list_sources, load_source

# 0.6 x size / total of SPIN's training npz files: lsp_dataset_original, mpii, hr-lspet, coco_2014
ITW_SIZES = {"lsp": 1000, "mpii": 14810, "lsp_extended": 9428, "coco": 28344}


def _mixture(name: str) -> dict[str, float]:
    cfg = load_train_config(f"configs/train/{name}.yaml")
    out = {}
    for source in cfg.data.train:
        dataset, split = Path(source.path).parts[-2:]
        assert dataset in list_sources(), f"{source.path}: no manifests/sources/{dataset}.yaml"
        assert split in {s.split for s in load_source(dataset).splits}, f"{source.path}: no split {split}"
        out[dataset] = source.weight
    assert cfg.model.preset == "paper"
    return out


def test_h36m_densepose_coco_is_half_and_half():
    assert _mixture("paper_h36m_dpcoco") == {"h36m": 0.5, "densepose_coco": 0.5}


def test_h36m_in_the_wild_is_30_60_10_with_the_wild_sets_by_size():
    mix = _mixture("paper_h36m_itw")
    assert mix.pop("h36m") == 0.3 and mix.pop("mpi_inf_3dhp") == 0.1
    total = sum(ITW_SIZES.values())
    assert mix == pytest.approx({k: 0.6 * n / total for k, n in ITW_SIZES.items()}, abs=1e-4)
