"""PartDrop zeroes exactly the chosen parts in every map and nothing else; Dropout/DropBlock; eval: off."""

from __future__ import annotations

import torch

from model.partdrop import MapDrop, drop_blocks, drop_pixels, sample_part_keep
from pipeline.body.constants import PARTIAL_PART_SUBSETS
from pipeline.render.partial import partial_iuv
from tests.model_fakes import synthetic_iuv


def maps_pair(batch: int = 3):
    gt = synthetic_iuv(batch, 32, seed=1)
    centers = torch.rand(batch, 24, 2) - 0.5
    scales = torch.full((batch, 24), 0.6)
    return gt, partial_iuv(gt, centers, scales, 16, mode="nearest")


def test_partdrop_zeroes_the_same_parts_in_global_and_every_partial_map():
    gt, partial = maps_pair()
    drop = MapDrop("partdrop", 0.3).train()
    keep = sample_part_keep(3, 0.3, generator=torch.Generator().manual_seed(0))
    assert (keep[:, 1:] == 0).any() and (keep[:, 1:] == 1).any() and torch.all(keep[:, 0] == 1)
    g, p = drop(gt, partial, keep)
    for b in range(3):
        for part in range(25):
            for ch in (part, 25 + part, 50 + part):  # I, U, V channel of this part
                want = gt[b, ch] * keep[b, part]
                assert torch.equal(g[b, ch], want)
        for j, parts in enumerate(PARTIAL_PART_SUBSETS):
            for c, part in enumerate([0, *parts]):
                for ch in (c, 7 + c, 14 + c):
                    assert torch.equal(p[b, j, ch], partial[b, j, ch] * keep[b, part])


def test_partdrop_samples_about_rate_and_is_inactive_in_eval():
    keep = sample_part_keep(2000, 0.3, generator=torch.Generator().manual_seed(0))
    assert abs((1 - keep[:, 1:].mean()).item() - 0.3) < 0.01
    gt, partial = maps_pair()
    for kind in ("partdrop", "dropout", "dropblock"):
        drop = MapDrop(kind, 0.5).eval()
        g, p = drop(gt, partial)
        assert g is gt and p is partial
        g, p = drop.train()(gt, partial)
        assert not torch.equal(g, gt)


def test_dropout_and_dropblock_rates_count_foreground_only():
    gt = synthetic_iuv(16, 56, seed=2)
    fg = gt[:, 0] < 0.5
    for out in (drop_pixels(gt, 0.3, 1), drop_blocks(gt, 0.3, 5, 1)):
        dropped = (out.abs().sum(1) == 0) & fg
        assert torch.equal(out[:, :, ~fg.any(0)], gt[:, :, ~fg.any(0)])  # pure background untouched
        assert torch.all(out[:, 0][~fg] == 1)  # background pixels keep their label
        assert 0.2 < dropped.sum() / fg.sum() < 0.4
