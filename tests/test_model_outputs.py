"""DaNet.forward's output keeps to model/outputs.py: no undeclared key, each declared group present exactly
when its flags say, each tensor with the documented shape."""

from __future__ import annotations

import pytest
import torch

from model.config import config_from_dict, tiny_config
from model.danet import DaNet
from model.outputs import BODY_KEYS, IUV_KEYS, SPIN24_KEYS, STREAM_KEYS, DaNetOutput
from tests.model_fakes import FakeBody, synthetic_batch

DECLARED = set(DaNetOutput.__annotations__)


def test_groups_partition_the_declared_keys():
    groups = [IUV_KEYS, STREAM_KEYS, BODY_KEYS, SPIN24_KEYS, {"gt_partial"}]
    assert sum(len(g) for g in groups) == len(DECLARED)
    assert set().union(*groups) == DECLARED


@pytest.mark.parametrize(
    ("overrides", "body", "with_iuv", "iuv_only", "expected"),
    [
        ({}, True, True, False, IUV_KEYS | STREAM_KEYS | BODY_KEYS | SPIN24_KEYS | {"gt_partial"}),
        ({}, False, False, False, IUV_KEYS | STREAM_KEYS),
        ({}, True, True, True, IUV_KEYS | {"gt_partial"}),
        ({"decompose": False}, False, False, False, IUV_KEYS | STREAM_KEYS),
    ],
)
def test_keys_present_exactly_as_documented(overrides, body, with_iuv, iuv_only, expected):
    cfg = config_from_dict({"preset": "tiny", **overrides})
    torch.manual_seed(0)
    model = DaNet(cfg, FakeBody() if body else None).eval()
    image, targets = synthetic_batch(2, cfg.image_size)
    if not with_iuv:
        targets = {k: v for k, v in targets.items() if k != "iuv"}
    with torch.no_grad():
        out = model(image, targets, iuv_only=iuv_only)
    assert set(out) == expected
    if "positions" in out and overrides.get("decompose") is False:
        assert out["positions"] == []


def test_shapes_follow_the_documented_layout():
    cfg = tiny_config()
    torch.manual_seed(0)
    model = DaNet(cfg, FakeBody()).eval()
    image, targets = synthetic_batch(2, cfg.image_size)
    with torch.no_grad():
        out = model(image, targets)
    h, r = cfg.feature_size, cfg.roi.size
    k = 7 if cfg.roi.simplified else 25
    expected = {
        "index_logits": (2, 25, h, h), "u": (2, 25, h, h), "v": (2, 25, h, h),
        "coarse_logits": (2, 15, h, h), "heatmaps": (2, 24, h, h), "joints2d": (2, 24, 2),
        "roi_centers": (2, 24, 2), "roi_scales": (2, 24),
        "partial_index_logits": (2, 24, k, r, r), "partial_u": (2, 24, k, r, r), "partial_v": (2, 24, k, r, r),
        "gt_partial": (2, 24, 3 * k, r, r), "global_maps": (2, 75, h, h), "partial_maps": (2, 24, 3 * k, r, r),
        "cam": (2, 3), "betas": (2, 10), "rotmats": (2, 24, 3, 3), "joints": (2, 24, 3),
        "smpl_joints2d": (2, 24, 2), "keypoints3d": (2, 24, 3), "keypoints2d": (2, 24, 2),
    }  # fmt: skip
    for key, shape in expected.items():
        assert tuple(out[key].shape) == shape, key
    assert out["features"].shape[0] == 2 and out["features"].shape[-2:] == (h, h)
    assert out["vertices"].shape[0] == 2 and out["vertices"].shape[-1] == 3
    assert all(tuple(m.shape) == (2, 24, 3, 3) for m in out["rotmats_stages"])
    assert out["rotmats"] is out["rotmats_stages"][-1]
    assert all(tuple(p.shape) == (2, 24, 3) for p in out["positions"])
