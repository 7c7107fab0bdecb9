"""The real-data path end to end on SMPL-topology stand-ins in the real formats: SPIN npz with fits ->
ingest -> render_iuv with the SMPL body -> verify_shards -> train 20 steps -> evaluate with the H36M regressor.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fixtures_data.images import write_image

IMAGE = 128
FOCAL = 500.0
DEPTH = 10.0  # metres: the body is ~85 px tall in the image


def _spin_h36m_arrays(files: dict, names: list[str], seed: int) -> dict[str, np.ndarray]:
    """SPIN's h36m npz keys for people posed on the SMPL stand-in: 2D keypoints projected from its SPIN-24
    keypoints, S = the same keypoints in metres, pelvis-centred (as SPIN's preprocessing stores them)."""
    from pipeline.body import load_body_model

    body = load_body_model(files["smpl"], extra_regressor=files["extra"])
    rng = np.random.default_rng(seed)
    n = len(names)
    pose = rng.normal(0.0, 0.15, (n, 72)).astype(np.float32)
    pose[:, :3] = [np.pi, 0.0, 0.0]  # SMPL's y-up body seen by a y-down camera: turned about x
    shape = rng.normal(0.0, 0.5, (n, 10)).astype(np.float32)
    with torch.no_grad():
        vertices = body(betas=torch.as_tensor(shape), pose=torch.as_tensor(pose)).vertices
        keypoints = body.regress(vertices, "spin24").double().numpy()
    camera = keypoints + np.array([0.0, 0.0, DEPTH])
    part = np.ones((n, 24, 3))
    part[..., :2] = FOCAL * camera[..., :2] / camera[..., 2:] + IMAGE / 2.0
    S = np.ones((n, 24, 4))
    S[..., :3] = keypoints - keypoints[:, 14:15]
    return {
        "imgname": np.array(names), "center": np.tile([IMAGE / 2.0, IMAGE / 2.0], (n, 1)),
        "scale": np.full(n, 0.5), "part": part, "S": S, "pose": pose, "shape": shape,
        "has_smpl": np.ones(n), "gender": np.array(["m" if i % 2 else "f" for i in range(n)]),
    }  # fmt: skip


@pytest.mark.slow
def test_real_path_ingest_render_train_evaluate(smpl_standin, tmp_path):
    from stages.evaluate import main as evaluate
    from stages.ingest import main as ingest
    from stages.render_iuv import main as render_iuv
    from stages.train import main as train
    from stages.verify_shards import main as verify

    body, files = smpl_standin
    raw, manifests, shards = tmp_path / "raw", tmp_path / "manifests", tmp_path / "shards"
    splits = {
        "h36m/h36m_train.npz": [f"images/S1_Walking_1.54138969_{i:06d}.jpg" for i in range(1, 13)],
        "spin_extras/dataset_extras/h36m_valid_protocol1.npz": [
            f"images/S9_Directions_1.54138969_{i:06d}.jpg" for i in range(1, 7)
        ],
        "spin_extras/dataset_extras/h36m_valid_protocol2.npz": [
            f"images/S11_Eating_1.54138969_{i:06d}.jpg" for i in range(1, 5)
        ],
    }
    for seed, (annotation, names) in enumerate(splits.items()):
        (raw / annotation).parent.mkdir(parents=True, exist_ok=True)
        np.savez(raw / annotation, **_spin_h36m_arrays(files, names, seed))
        for i, name in enumerate(names):
            write_image(raw / "h36m" / name, IMAGE, IMAGE, seed=100 * seed + i)
    assert ingest(["--dataset", "h36m", "--root", str(raw), "--out", str(manifests)]) == 0

    uv = tmp_path / "UV_Processed.mat"
    uv.write_bytes(files["uv"].read_bytes())
    body_flags = ["--body-model", str(files["smpl"]), "--dense-parts", str(uv)]
    body_flags += ["--extra-regressor", str(files["extra"])]
    render = ["--dataset", "h36m", "--root", str(raw / "h36m"), "--manifests", str(manifests)]
    render += [
        "--out",
        str(shards),
        "--workers",
        "0",
        "--crop-size",
        "96",
        "--shard-size",
        "8",
        "--no-progress",
    ]
    assert render_iuv([*render, *body_flags]) == 0
    index = json.loads((shards / "h36m" / "train" / "index.json").read_text())
    assert index["samples"] == 12 and not index["rejects"]
    recorded = index["params"]["body"]
    assert recorded["model"] == str(files["smpl"]) and recorded["dense_parts"] == str(uv)
    assert "dense_parts:UV_Processed.mat" in recorded["sha256"]
    for split in ("train", "valid_p1", "valid_p2"):
        assert verify([str(shards / "h36m" / split)]) == 0

    from pipeline.loader import Source, make_dataset

    batch = next(iter(make_dataset([Source(str(shards / "h36m" / "train"))], batch_size=4, seed=0)))
    foreground = batch["iuv_onehot"][:, 1:25].sum(1).flatten(1).mean(1)
    assert bool((foreground > 0.02).all()), "every crop carries the rendered SMPL body"

    def tars(split="train"):
        return {p.name: p.read_bytes() for p in (shards / "h36m" / split).glob("*.tar")}

    before = tars()
    assert render_iuv([*render, "--split", "train", *body_flags]) == 0  # unchanged files: shards kept
    assert tars() == before
    from scipy.io import loadmat, savemat

    mat = loadmat(uv)
    mat["All_U_norm"] = 1.0 - mat["All_U_norm"]  # another chart: the maps must be rendered again
    savemat(uv, {k: v for k, v in mat.items() if not k.startswith("__")})
    assert render_iuv([*render, "--split", "train", *body_flags]) == 0
    assert tars().keys() == before.keys() and tars() != before

    run = tmp_path / "run"
    overrides = [
        f"data.train=[{{path: {shards / 'h36m' / 'train'}}}]", f"data.val={shards / 'h36m' / 'valid_p1'}",
        "model.overrides.mean_params=null", "model.overrides.image_size=64", "model.init.checkpoint=null",
        "data.batch_size=4", "data.num_workers=0", "data.shuffle_buffer=8", "run.device=cpu",
        "run.steps=20", "run.checkpoint_every=10", "optim.iuv_only_steps=5",
    ]  # fmt: skip
    config = Path(__file__).resolve().parents[1] / "configs" / "train" / "demo.yaml"
    assert train(["--config", str(config), "--out", str(run), "--no-progress",
                  "--body-model", str(files["smpl"]), "--extra-regressor", str(files["extra"]), *overrides]) == 0  # fmt: skip
    out = tmp_path / "eval"
    assert evaluate([
        "--checkpoint", str(run / "model.pt"), "--dataset", "h36m", "--split", "valid_p1",
        "--shards", str(shards), "--out", str(out), "--body-model", str(files["smpl"]),
        "--h36m-regressor", str(files["h36m"]), "--extra-regressor", str(files["extra"]),
    ]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == {
        "name": "h36m-p1", "joints": 14, "ground_truth": "keypoints", "joint_regressor": "h36m17",
        "comparable_with_papers": True,
    }  # fmt: skip
    assert metrics["samples"] == 6
    for key in ("mpjpe", "pa_mpjpe", "pve", "pve_s", "pve_p", "baseline_pa_mpjpe"):
        assert metrics[key] is not None and 0 < metrics[key] < 2000, key
    # the per-action table: every valid_p1 image is S9_Directions_1...: one row, the whole split
    assert metrics["per_action"] == {
        "Directions": {"samples": 6, "mpjpe": metrics["mpjpe"], "pa_mpjpe": metrics["pa_mpjpe"]}
    }
