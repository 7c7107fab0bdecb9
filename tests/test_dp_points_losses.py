"""Point losses against hand-computed values, and a batch with points only training the IUV estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.config import paper_config, tiny_config
from model.losses import INTER_TERMS, inter_losses, loss_weights, weighted_total
from model.point_losses import point_losses, sample_at_points
from model.training.targets import point_targets

MAP = 56  # loader IUV grid; loader pixel x = 4 c + 1.5 is the centre of map column c


def _pred(b: int = 2) -> dict:
    return {
        "index_logits": torch.zeros(b, 25, MAP, MAP, requires_grad=True),
        "u": torch.zeros(b, 25, MAP, MAP),
        "v": torch.zeros(b, 25, MAP, MAP),
        "coarse_logits": torch.zeros(b, 15, MAP, MAP),
    }


def _batch() -> dict:
    points = torch.zeros(2, 2, 5)
    # sample 0: part 5 at map pixel (c=3, r=7) with U 0.2, V 0.4; part 9 at (c=10, r=20); sample 1: none
    points[0, 0] = torch.tensor([4 * 3 + 1.5, 4 * 7 + 1.5, 5, 0.2, 0.4])
    points[0, 1] = torch.tensor([4 * 10 + 1.5, 4 * 20 + 1.5, 9, 0.5, 0.5])
    mask = torch.zeros(2, MAP, MAP, dtype=torch.uint8)
    mask[1, :10] = 14
    return {
        "dp_points": points,
        "dp_count": torch.tensor([2, 0]),
        "has_dp": torch.tensor([True, False]),
        "dpmask": mask,
        "has_dpmask": torch.tensor([False, True]),
    }


def test_points_at_pixel_centres_sample_those_pixels():
    maps = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    xy = torch.tensor([[[(1 + 0.5) / 2 - 1, (2 + 0.5) / 2 - 1]], [[(3 + 0.5) / 2 - 1, (0 + 0.5) / 2 - 1]]])
    np.testing.assert_allclose(sample_at_points(maps, xy)[:, 0, 0], [2 * 4 + 1, 16 + 0 * 4 + 3])


def test_point_terms_by_hand():
    pred = _pred()
    with torch.no_grad():
        pred["index_logits"][0, 5, 7, 3] = math.log(3.0)  # p(part 5) = 3 / (3 + 24) = 1/9 there
        pred["u"][0, 5, 7, 3], pred["v"][0, 5, 7, 3] = 0.7, 0.4  # U off by 0.5, V exact
        pred["u"][0, 9, 20, 10], pred["v"][0, 9, 20, 10] = 0.5, 2.5  # V off by 2
        pred["u"][1] = 9.0  # a sample without points: must not count
    targets = point_targets(_batch(), MAP, torch.device("cpu"))
    paper = point_losses(pred, targets, paper_config().loss)
    assert paper["dp_part_index"].item() == pytest.approx((math.log(9.0) + math.log(25.0)) / 2, rel=1e-5)
    # smooth-L1, beta 1: 0.5 * 0.5^2 = 0.125 and 2 - 0.5 = 1.5, summed over the batch's points (theirs)
    assert paper["dp_uv"].item() == pytest.approx(0.125 + 1.5, rel=1e-5)
    assert paper["dp_coarse_index"].item() == pytest.approx(math.log(15.0), rel=1e-5)  # zero logits
    tiny = point_losses(pred, targets, tiny_config().loss)
    assert tiny["dp_uv"].item() == pytest.approx((0.5 + 2.0) / 2, rel=1e-5)  # L1 mean over sample 0's points
    w = loss_weights(paper_config())
    assert (w["dp_part_index"], w["dp_uv"], w["dp_coarse_index"]) == (0.3, 0.5, 2.0)


def test_a_sample_contributes_only_the_terms_it_has_labels_for():
    pred = _pred()
    assert point_losses(pred, {}, tiny_config().loss) == {}
    batch = _batch()
    batch["dp_count"][:] = 0
    batch["has_dpmask"][:] = False
    assert point_losses(pred, point_targets(batch, MAP, torch.device("cpu")), tiny_config().loss) == {}
    batch = _batch()
    terms = inter_losses(pred, point_targets(batch, MAP, torch.device("cpu")), tiny_config().loss)
    assert set(terms) == {"dp_part_index", "dp_uv", "dp_coarse_index"}  # no dense map, no joints
    assert set(terms) <= set(INTER_TERMS)  # trained in the IUV-only phase too
    moved = {k: v.detach().clone() for k, v in pred.items()}
    moved["coarse_logits"][0] = torch.randn(15, MAP, MAP)  # sample 0 has points but no mask
    moved["index_logits"][1] = torch.randn(25, MAP, MAP)  # sample 1 has a mask but no points
    again = inter_losses(moved, point_targets(batch, MAP, torch.device("cpu")), tiny_config().loss)
    for k in terms:
        assert again[k].item() == pytest.approx(terms[k].item())


def test_masks_at_another_map_size_are_resampled_by_nearest():
    targets = point_targets(_batch(), 28, torch.device("cpu"))
    assert targets["dpmask"].shape == (2, 28, 28)
    assert (targets["dpmask"][1, :5] == 14).all() and (targets["dpmask"][1, 5:] == 0).all()


@pytest.mark.slow
def test_a_batch_with_points_only_trains_the_estimator(tmp_path):
    """Synthetic DensePose-COCO json -> ingest -> shards (no SMPL, no dense map) -> loader -> tiny DaNet."""
    from model.config import config_from_dict
    from model.danet import DaNet
    from model.training.targets import batch_to_inputs
    from pipeline.augment import AugmentConfig
    from pipeline.body import load_body_model
    from pipeline.datasets.ingest import ingest_dataset
    from pipeline.datasets.sources import load_source
    from pipeline.loader import make_dataset
    from pipeline.render_job import ShardParams, render_dataset
    from stages import synthesize

    raw = tmp_path / "raw"
    synthesize.main(
        ["--out", str(raw / "synth_dp"), "--n", "12", "--size", "128", "--densepose", "--no-progress"]
    )
    ingest_dataset(load_source("synth_dp"), raw, tmp_path / "manifests", splits=["train"], workers=0)
    out = tmp_path / "shards" / "synth_dp" / "train"
    params = ShardParams("synth_dp", "train", shard_size=16, crop_size=128)
    render_dataset(tmp_path / "manifests/synth_dp/train.parquet", raw / "synth_dp", out, params, workers=0,
                   progress=False)  # fmt: skip
    stream = make_dataset([out], batch_size=8, augment=AugmentConfig(), shuffle=False, seed=0)
    batch = next(iter(stream))
    assert batch["has_dp"].all() and not batch["has_iuv"].any() and not batch["has_smpl"].any()
    assert (batch["dp_count"] > 50).all() and batch["has_dpmask"].all()
    torch.manual_seed(0)
    cfg = config_from_dict({"preset": "tiny", "drop": {"kind": "none"}})
    body = load_body_model("anny-smpl24")
    model = DaNet(cfg, body).train()
    image, targets = batch_to_inputs(batch, cfg.image_size, cfg.feature_size, body, torch.device("cpu"))
    params = [p for n, p in model.named_parameters() if n.startswith("iuv.")]
    opt = torch.optim.Adam(params, lr=3e-3)
    history = []
    for _ in range(60):
        terms = inter_losses(model(image, targets, iuv_only=True), targets, cfg.loss)
        total = weighted_total(terms, cfg, INTER_TERMS)
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append({k: v.item() for k, v in terms.items()} | {"total": total.item()})
        if history[-1]["total"] < 0.5 * history[0]["total"]:
            break
    first, last = history[0], history[-1]
    assert first["dp_part_index"] > 0 and first["part_index"] == 0.0  # no dense labels in the batch
    assert last["total"] < 0.5 * first["total"], (first, last)
    for k in ("dp_part_index", "dp_uv", "dp_coarse_index"):
        assert last[k] < first[k], (k, first[k], last[k])
