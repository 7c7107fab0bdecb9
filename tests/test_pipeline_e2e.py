"""The demo chain end to end at small size: synthesize -> ingest -> render_iuv shards -> verify -> loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_synthetic_chain_gives_verified_shards_the_loader_can_batch(tmp_path):
    from pipeline.loader import Source, make_dataset
    from stages.ingest import main as ingest
    from stages.render_iuv import main as render_iuv
    from stages.synthesize import main as synthesize
    from stages.verify_shards import main as verify

    raw, manifests, shards = tmp_path / "raw", tmp_path / "manifests", tmp_path / "shards"
    assert synthesize(["--out", str(raw / "synth"), "--n", "24", "--size", "128", "--no-progress"]) == 0
    assert ingest(["--dataset", "synth", "--root", str(raw), "--out", str(manifests)]) == 0
    args = [
        "--dataset",
        "synth",
        "--root",
        str(raw / "synth"),
        "--manifests",
        str(manifests),
        "--out",
        str(shards),
    ]
    assert (
        render_iuv([*args, "--workers", "0", "--shard-size", "10", "--crop-size", "128", "--no-progress"])
        == 0
    )
    index = json.loads((shards / "synth" / "train" / "index.json").read_text())
    assert index["samples"] == 22 and len(index["shards"]) == 3 and not index["rejects"]
    assert verify([str(shards / "synth" / "train")]) == 0

    dataset = make_dataset([Source(str(shards / "synth" / "train"))], batch_size=4, seed=0)
    batch = next(iter(dataset))
    assert batch["image"].shape == (4, 3, 224, 224)
    assert batch["iuv_onehot"].shape == (4, 75, 56, 56)
    foreground = batch["iuv_onehot"][:, 1:25].sum(1)
    assert float(foreground.mean()) > 0.05, "every sample carries a rendered body"
    assert np.all(np.asarray(batch["has_smpl"]))


def test_dvc_pipeline_stages_name_real_commands_and_params():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["real_datasets"] == [], "real datasets are off by default"
    for name, stage in stages.items():
        body = stage.get("do", stage)
        commands = body["cmd"] if isinstance(body["cmd"], list) else [body["cmd"]]
        for command in commands:
            module = command.split()[2]
            assert (REPO / Path(*module.split("."))).with_suffix(".py").is_file(), f"{name}: {module} missing"
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "stage", "list"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert {"synthesize", "ingest_synth", "render_synth"} <= {
        line.split()[0] for line in result.stdout.splitlines()
    }
