"""The README's evaluation promises, with oracles that are not the evaluation code: predictions equal to the
ground truth score 0 mm and 100 %; the mean-pose baseline equals an independent numpy MPJPE / PA-MPJPE
(its own 6D decoding of smpl_mean_params.npz, its own Procrustes); the per-action table's rows are the
hand-grouped means and the overall figure their frame-weighted mean; COCO keypoint entries by hand; and
3DPW's gendered ground truth routed sample by sample in a mixed batch.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model.config import config_from_dict
from model.danet import DaNet
from model.evaluation import evaluate, sample_errors, shard_metadata
from model.training.targets import batch_to_inputs
from pipeline.augment import AugmentConfig
from pipeline.body import load_body_model
from pipeline.loader import Source, make_dataset
from tests.fixtures_data.eval_oracle import mean_pose_errors
from tests.test_train import shards  # noqa: F401 - the module-scoped toy shards (synth, 18 train + 2 val)


@pytest.fixture(scope="module")
def body():
    return load_body_model("anny-smpl24")


@pytest.fixture(scope="module")
def toy(shards, body):  # noqa: F811
    """The tiny network on the open body with the toy set's mean parameters, the train split's batches (18
    samples, in the evaluation's order) and their targets."""
    mean_params = shards / "raw" / "synth" / "mean_params.npz"
    torch.manual_seed(0)
    network = DaNet(config_from_dict({"preset": "tiny", "mean_params": str(mean_params)}), body).eval()
    folder = shards / "shards" / "synth" / "train"
    dataset = make_dataset(
        [Source(str(folder))], batch_size=8, augment=AugmentConfig(enabled=False), shuffle=False,
        onehot=False, seed=0,
    )  # fmt: skip
    batches = list(dataset)
    cfg = network.cfg
    targets = [
        batch_to_inputs(b, cfg.image_size, cfg.feature_size, body, torch.device("cpu"))[1] for b in batches
    ]
    return network, batches, targets, shard_metadata(folder), mean_params


def run(network, batches, metadata, body, predict):
    """evaluate() with the network's estimate replaced, batch after batch, by `predict(out, batch_index)`."""
    plain = type(network).forward
    count = iter(range(len(batches)))

    def forward(image, targets=None, **kwargs):
        out = plain(network, image, targets, **kwargs)
        return predict(out, next(count))

    network.forward = forward
    try:
        return evaluate(network, batches, metadata, lambda gender: body, torch.device("cpu"), keep_examples=0)
    finally:
        del network.forward


def mean_pose(network, body):
    def predict(out, _):
        rotmats = network.to_rotmats(torch.zeros_like(network.mean_rotation).expand(len(out["cam"]), -1, -1))
        betas = network.mean_betas.expand(len(out["cam"]), -1)
        out.update(betas=betas, rotmats=rotmats, vertices=body(betas=betas, pose=rotmats).vertices)
        return out

    return predict


# -- tests ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ground_truth_predictions_score_zero_and_a_perfect_estimator_100_percent(toy, body):
    network, batches, targets, metadata, _ = toy

    def perfect(out, i):
        t = targets[i]
        from pipeline.body.model import pose_to_rotmats

        out.update(betas=t["betas"], rotmats=pose_to_rotmats(t["pose"]), vertices=t["smpl_vertices"])
        out["index_logits"] = t["iuv"][:, :25] * 50.0  # the ground-truth part of every pixel, surely
        return out

    summary, records, _ = run(network, batches, metadata, body, perfect)
    assert summary["samples"] == len(records) == 18
    for name in ("mpjpe", "pa_mpjpe", "pve", "pve_s", "pve_p", "pve_scale_aligned", "pve_procrustes"):
        assert summary[name] == pytest.approx(0.0, abs=0.05), name
    for name in ("iuv_part_accuracy", "iuv_segment_accuracy", "iuv_foreground_iou"):
        assert summary[name] == 100.0, name
    assert summary["baseline_pa_mpjpe"] > 10 and summary["pa_mpjpe_ratio_to_mean_pose"] == 0.0

    from pipeline.body.constants import PART_FLIP

    def mirrored_parts(out, i):  # every pixel given its part's mirror image (left <-> right)
        out["index_logits"] = targets[i]["iuv"][:, list(PART_FLIP)] * 50.0
        return out

    summary, _, _ = run(network, batches, metadata, body, mirrored_parts)
    assert summary["iuv_segment_accuracy"] == 100.0 and summary["iuv_foreground_iou"] == 100.0
    flip = torch.tensor(PART_FLIP)
    by_hand = []  # per sample: the share of its person's pixels on a part that is its own mirror image
    for t in targets:
        for index in t["iuv"][:, :25].argmax(1):
            person = index[index > 0]
            by_hand.append(100.0 * float((flip[person] == person).float().mean()))
    assert 0 < np.mean(by_hand) < 100
    assert summary["iuv_part_accuracy"] == pytest.approx(np.mean(by_hand), abs=0.01)


@pytest.mark.slow
def test_the_mean_pose_baseline_is_an_independent_numpy_mpjpe(toy, body):
    network, batches, targets, metadata, mean_params = toy
    summary, records, _ = run(network, batches, metadata, body, lambda out, i: out)
    mpjpe, pa = mean_pose_errors(body, mean_params, targets)
    np.testing.assert_allclose([r["baseline_mpjpe"] for r in records], mpjpe, atol=0.01)
    np.testing.assert_allclose([r["baseline_pa_mpjpe"] for r in records], pa, atol=0.01)
    assert summary["baseline_mpjpe"] == pytest.approx(mpjpe.mean(), abs=0.006)
    assert summary["baseline_pa_mpjpe"] == pytest.approx(pa.mean(), abs=0.006)
    assert summary["pa_mpjpe_ratio_to_mean_pose"] == round(
        summary["pa_mpjpe"] / summary["baseline_pa_mpjpe"], 3
    )


@pytest.mark.slow
def test_per_action_rows_are_the_actions_means_and_weigh_into_the_total(toy, body):
    network, batches, targets, metadata, mean_params = toy
    keys = [k for b in batches for k in b["key"]]
    actions = ["Walking"] * 5 + ["Eating"] * 11 + ["", ""]  # the last two have none: in no row
    tagged = {k: {**metadata[k], "action": a} for k, a in zip(keys, actions, strict=True)}
    summary, _, _ = run(network, batches, tagged, body, mean_pose(network, body))
    mpjpe, pa = mean_pose_errors(body, mean_params, targets)  # the mean pose's errors, sample by sample
    table = summary["per_action"]
    assert list(table) == ["Eating", "Walking"]
    rows = {"Walking": slice(0, 5), "Eating": slice(5, 16)}
    for action, rows_of in rows.items():
        assert table[action]["samples"] == rows_of.stop - rows_of.start
        assert table[action]["mpjpe"] == pytest.approx(mpjpe[rows_of].mean(), abs=0.006)
        assert table[action]["pa_mpjpe"] == pytest.approx(pa[rows_of].mean(), abs=0.006)
    weighted = sum(table[a]["samples"] * table[a]["mpjpe"] for a in table) / 16
    assert weighted == pytest.approx(mpjpe[:16].mean(), abs=0.01)  # frame-weighted, not a mean of rows
    assert summary["samples"] == 18 and summary["mpjpe"] == pytest.approx(mpjpe.mean(), abs=0.006)


# COCO's 17 keypoints in their published order, by name; SPIN24_NAMES says where each is in SPIN's 24
COCO17 = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
          "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
          "right_knee", "left_ankle", "right_ankle")  # fmt: skip


def test_coco_entries_by_hand():
    from model.evaluation import coco_entries
    from pipeline.body.constants import SPIN24_NAMES

    rows = [SPIN24_NAMES.index(name) for name in COCO17]
    kp2d = torch.rand(3, 24, 3, generator=torch.Generator().manual_seed(0)) * 224
    pred = torch.zeros(3, 24, 2)
    pred[0, rows[0]] = torch.tensor([-1.0, 1.0])  # the nose at the crop's left and bottom edges
    square = json.dumps([[0, 0, 10, 0, 10, 10, 0, 10]])  # 100 px in the image
    metadata = {
        "a": {"mask": square, "scale": 448 / 200},  # the box is 448 image px: the 224 crop halves it
        "b": {"mask": None, "scale": 1.0},  # no segmentation: not a COCO sample
        "c": {"mask": square, "scale": 1.0},  # a 200 px box: x 1.12
    }
    entries = coco_entries(["a", "b", "c"], metadata, kp2d, pred)
    assert len(entries) == 2
    a, c = entries
    assert a["area"] == pytest.approx(100 * 0.5**2) and c["area"] == pytest.approx(100 * 1.12**2)
    np.testing.assert_allclose(a["gt"], kp2d[0, rows].numpy())
    np.testing.assert_allclose(c["gt"], kp2d[2, rows].numpy())
    # normalised -1 / +1 are the crop's outer pixel edges: -0.5 and 223.5 in pixel-centre coordinates
    np.testing.assert_allclose(a["pred"][0], [-0.5, 223.5])
    np.testing.assert_allclose(a["pred"][1:], np.full((16, 2), 111.5))
    assert coco_entries(["a"], metadata, kp2d[:1], None) == []


def test_3dpw_scores_each_sample_against_its_own_gendered_body(smpl_standin):
    """A mixed batch (male, female, neutral): the prediction is each sample's own ground-truth mesh, so every
    sample scores 0 when its gender picks its body, and the two gendered ones do not when the callback mixes
    the genders up."""
    from model.evaluation import Prediction
    from model.protocols import Protocol
    from pipeline.body.model import pose_to_rotmats

    _, files = smpl_standin
    load = {
        g: load_body_model(files["smpl"], gender=g, h36m_regressor=files["h36m"]) for g in ("male", "female")
    }
    neutral = load_body_model(files["smpl"], h36m_regressor=files["h36m"])
    by_gender = {"m": load["male"], "f": load["female"], "n": neutral}
    genders = ["m", "f", "n"]
    g = torch.Generator().manual_seed(0)
    pose, betas = 0.2 * torch.randn(3, 72, generator=g), 0.5 * torch.randn(3, 10, generator=g)
    with torch.no_grad():
        vertices = torch.cat([by_gender[x](betas=betas[i : i + 1], pose=pose[i : i + 1]).vertices
                              for i, x in enumerate(genders)])  # fmt: skip
    ones = torch.ones(3, dtype=torch.bool)
    batch = {"pose": pose, "betas": betas, "kp3d": torch.zeros(3, 24, 4), "has_smpl": ones, "has_kp3d": ones}
    prediction = Prediction(betas, pose_to_rotmats(pose), vertices)
    protocol = Protocol("3dpw", 14, "mesh")
    right = sample_errors(neutral, by_gender.__getitem__, batch, prediction, genders, protocol)
    assert float(right["mpjpe"].abs().max()) < 0.05, right["mpjpe"]
    swapped = {"m": by_gender["f"], "f": by_gender["m"], "n": neutral}
    wrong = sample_errors(neutral, swapped.__getitem__, batch, prediction, genders, protocol)
    assert float(wrong["mpjpe"][:2].min()) > 5 and float(wrong["mpjpe"][2]) < 0.05, wrong["mpjpe"]


@pytest.mark.parametrize(
    ("imgname", "expected"),
    [  # SPIN's Human3.6M image names: subject_action[_subaction].camera_frame; the table merges subactions
        ("images/S9_Directions_1.54138969_000001.jpg", ("Directions", "S9", "S9_Directions_1.54138969")),
        ("images/S9_Directions.54138969_000001.jpg", ("Directions", "S9", "S9_Directions.54138969")),
        (
            "images/S11_SittingDown_2.60457274_000010.jpg",
            ("SittingDown", "S11", "S11_SittingDown_2.60457274"),
        ),
        (
            "images/S9_WalkTogether 1.58860488_000001.jpg",
            ("WalkTogether", "S9", "S9_WalkTogether 1.58860488"),
        ),
    ],
)
def test_h36m_actions_come_from_the_image_names(imgname, expected):
    from pipeline.datasets.spin_npz import name_fields

    assert name_fields("h36m", imgname) == expected
    assert name_fields("lsp", imgname) == ("", "", "")  # other datasets have no actions
