"""Joint-centric RoI crops and partial IUV maps (pipeline/render/partial.py)."""

from __future__ import annotations

import torch

from pipeline.body.constants import PARTIAL_PART_SUBSETS
from pipeline.render.partial import (
    crop_rois,
    gt_partial_iuv,
    partial_channel_index,
    partial_index_labels,
    partial_iuv,
)
from tests.model_fakes import synthetic_iuv


def test_full_scale_roi_at_centre_is_the_map():
    maps = torch.randn(2, 5, 8, 8)
    out = crop_rois(maps, torch.zeros(2, 3, 2), torch.ones(2, 3), 8, mode="nearest")
    assert out.shape == (2, 3, 5, 8, 8)
    assert torch.equal(out[:, 1], maps)


def test_half_scale_roi_picks_the_quadrant_it_is_centred_on():
    maps = torch.arange(64.0).reshape(1, 1, 8, 8)
    # centre of the top-right quadrant: x = +0.5, y = -0.5 (y down); half of the side.
    out = crop_rois(maps, torch.tensor([[[0.5, -0.5]]]), torch.tensor([[0.5]]), 4, mode="nearest")
    assert torch.equal(out[0, 0, 0], maps[0, 0, :4, 4:])


def test_every_joints_crop_comes_from_its_own_sample_and_centre():
    """Batched crops equal cropping each (sample, joint) alone; gradients reach each sample's own map."""
    gen = torch.Generator().manual_seed(0)
    maps = torch.randn(3, 5, 12, 12, generator=gen, requires_grad=True)
    centers = torch.rand(3, 4, 2, generator=gen) * 1.6 - 0.8
    scales = torch.rand(3, 4, generator=gen) * 0.5 + 0.2
    out = crop_rois(maps, centers, scales, 6)
    for b in range(3):
        for j in range(4):
            alone = crop_rois(maps[b : b + 1], centers[b : b + 1, j : j + 1], scales[b : b + 1, j : j + 1], 6)
            torch.testing.assert_close(out[b, j], alone[0, 0])
    out[1].sum().backward()
    assert maps.grad[1].abs().sum() > 0 and maps.grad[0].abs().sum() == 0 and maps.grad[2].abs().sum() == 0


def test_the_crop_benchmarks_baseline_computes_the_same_crops():
    from bench.roi_crop import repeated_crop

    gen = torch.Generator().manual_seed(1)
    maps = torch.randn(2, 3, 10, 10, generator=gen)
    centers, scales = torch.rand(2, 5, 2, generator=gen) - 0.5, torch.rand(2, 5, generator=gen) * 0.5 + 0.2
    torch.testing.assert_close(repeated_crop(maps, centers, scales, 4), crop_rois(maps, centers, scales, 4))


def test_outside_the_map_is_zero_and_background_in_partial_maps():
    gt = synthetic_iuv(1, 16)
    far = torch.full((1, 24, 2), 5.0)
    part = gt_partial_iuv(gt, far, torch.full((1, 24), 0.3), 4)
    assert torch.all(part[:, :, 0] == 1) and torch.all(part[:, :, 1:] == 0)


def test_simplified_partial_maps_keep_each_joints_subset():
    gt = synthetic_iuv(2, 16, seed=3)
    centers, scales = torch.zeros(2, 24, 2), torch.ones(2, 24)
    full = gt_partial_iuv(gt, centers, scales, 16, simplified=False)
    simple = gt_partial_iuv(gt, centers, scales, 16)
    assert full.shape == (2, 24, 75, 16, 16) and simple.shape == (2, 24, 21, 16, 16)
    for j, parts in enumerate(PARTIAL_PART_SUBSETS):
        for c, p in enumerate(parts, start=1):
            assert torch.equal(simple[:, j, c], gt[:, p])  # I
            assert torch.equal(simple[:, j, 7 + c], gt[:, 25 + p])  # U
            assert torch.equal(simple[:, j, 14 + c], gt[:, 50 + p])  # V
        kept = gt[:, sorted(set(parts))].sum(1)
        assert torch.equal(simple[:, j, 0], 1 - kept)  # every other pixel is background
        labels = partial_index_labels(simple)[:, j]
        assert torch.equal(labels > 0, kept > 0)
    idx = partial_channel_index()
    assert idx.shape == (24, 21) and idx[10, 5].item() == 5 and idx[10, 6].item() == 5  # foot repeated


def test_bilinear_and_nearest_agree_on_constant_maps():
    maps = torch.ones(1, 75, 8, 8)
    out = partial_iuv(maps, torch.zeros(1, 24, 2), torch.full((1, 24), 0.5), 4, simplified=False)
    assert torch.allclose(out, torch.ones_like(out))
