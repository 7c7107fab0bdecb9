"""DDP: one data stream per rank and loader worker, agreed non-finite skips, rank-0 writes, exact resume.

The slow test runs the real thing: `torchrun --nproc_per_node=2` on CPU (gloo) with the tiny preset at
image_size 64, one non-finite loss injected on rank 1 only, then the same run interrupted and resumed.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.training.distributed import Distributed, NonfiniteInjector, all_finite, rank_seed
from pipeline import loader as L
from pipeline.augment import AugmentConfig
from tests.test_scale_helpers import REPO, child_env, stop_tree
from tests.test_shards_helpers import build_shards

PLAIN = AugmentConfig(enabled=False)
TORCHRUN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory) -> Path:
    return build_shards(tmp_path_factory.mktemp("one"), 6, shard_size=8, crop_size=64)


@pytest.fixture(scope="module")
def three_shards(tmp_path_factory) -> Path:
    return build_shards(tmp_path_factory.mktemp("three"), 12, shard_size=4, crop_size=64)


def _keys(folder: Path, monkeypatch, rank: int | None, worker: int | None, n: int) -> list[str]:
    """The first ``n`` sample keys of the resampled training stream as (rank of 2, worker of 2) sees it."""
    for name in ("RANK", "WORLD_SIZE", "WORKER", "NUM_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    if rank is not None:
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
    if worker is not None:
        monkeypatch.setenv("WORKER", str(worker))
        monkeypatch.setenv("NUM_WORKERS", "2")
    ds = L.make_dataset([folder], batch_size=2, augment=PLAIN, resampled=True, seed=7, shuffle_buffer=4)
    return [k for batch in itertools.islice(iter(ds), n // 2) for k in batch["key"]]


@pytest.mark.parametrize("layout", ["one_shard", "three_shards"])
def test_every_rank_and_worker_draws_its_own_stream_and_reaches_every_sample(layout, request, monkeypatch):
    folder = request.getfixturevalue(layout)
    every_key = {f"s{i:04d}" for i in range(6 if layout == "one_shard" else 12)}
    streams = {(r, w): _keys(folder, monkeypatch, r, w, 48) for r in (0, 1) for w in (0, 1)}
    for (a, sa), (b, sb) in itertools.combinations(streams.items(), 2):
        assert sa[:12] != sb[:12], f"streams {a} and {b} start with the same samples"
    for where, keys in streams.items():
        assert set(keys) == every_key, f"stream {where} misses {sorted(every_key - set(keys))}"
    single = _keys(folder, monkeypatch, None, None, 48)
    assert single == streams[0, 0], "rank 0 / worker 0 is the single-process stream"


def test_all_finite_and_the_injector_alone():
    alone = Distributed()
    assert all_finite(torch.tensor(1.5), alone) and not all_finite(torch.tensor(float("inf")), alone)
    assert not all_finite(torch.tensor([1.0, float("nan")]), alone)
    assert rank_seed(10, Distributed(rank=3, world_size=4)) == 13 and rank_seed(10, alone) == 10
    injector = NonfiniteInjector({(2, 1)})
    assert not injector.fires(2, 0) and injector.fires(2, 1) and not injector.fires(2, 1)


def test_injector_env_errors_name_the_variable():
    assert NonfiniteInjector.from_env({"DANET_DEBUG_NONFINITE": "3:1, 5:0"}).at == {(3, 1), (5, 0)}
    assert NonfiniteInjector.from_env({}).at == set()
    with pytest.raises(ValueError, match="DANET_DEBUG_NONFINITE.*'3-1'"):
        NonfiniteInjector.from_env({"DANET_DEBUG_NONFINITE": "3-1"})


# ---------------------------------------------------------------------------------------------------------
# torchrun


def _torchrun(out: Path, shards: Path, *overrides: str, resume: bool = False) -> dict:
    """Two CPU ranks of stages.train, both finishing; returns the run's train_metrics.json (rank 0's)."""
    env = child_env(DANET_DEBUG_NONFINITE="1:1")  # rank 1 alone sees a NaN loss at step 1
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "stages.train", "--config", str(REPO / "configs/train/demo.yaml"), "--out", str(out),
           "--no-progress", *(["--resume"] if resume else []),
           f"data.train=[{{path: {shards}}}]", "data.batch_size=2", "data.num_workers=0",
           "data.shuffle_buffer=4", "model.init.checkpoint=null", "model.overrides.mean_params=null",
           "model.overrides.image_size=64", "run.device=cpu", "run.threads=1", "run.log_every=1",
           "run.checkpoint_every=2", "optim.iuv_only_steps=1", "optim.lr_schedule=step",
           *overrides]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=TORCHRUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_tree(proc.pid)  # torchrun and both ranks (in sessions of their own): no hang outlives the test
        stdout, stderr = proc.communicate(timeout=30)
        raise AssertionError(f"torchrun hung for {TORCHRUN_TIMEOUT_S} s:\n{stderr[-4000:]}") from None
    assert proc.returncode == 0, stderr[-4000:]  # torchrun fails unless every rank exits with 0
    return json.loads((out / "train_metrics.json").read_text())


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


@pytest.mark.slow
def test_torchrun_two_ranks_skip_together_write_once_and_resume_exactly(tmp_path):
    shards = build_shards(tmp_path / "data", 16, shard_size=4, crop_size=96)

    straight = _torchrun(tmp_path / "straight", shards, "run.steps=4")
    # rank 1 alone saw the NaN, and rank 0 (which writes the summary) skipped that step with it
    assert straight["steps"] == 4 and straight["nonfinite_skipped"] == 1
    files = {p.name for p in (tmp_path / "straight").iterdir()}
    assert {"last.pt", "model.pt", "train_log.jsonl", "train_metrics.json"} <= files
    assert not [f for f in files if f.startswith(".") or "tmp" in f], f"left-over partial writes: {files}"
    log = [json.loads(line) for line in (tmp_path / "straight/train_log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == [1, 2, 3, 4], "one log line per step, from rank 0 only"
    checkpoint = torch.load(tmp_path / "straight/last.pt", map_location="cpu", weights_only=False)
    assert len(checkpoint["rng_ranks"]) == 2
    assert not torch.equal(checkpoint["rng_ranks"][0]["torch"], checkpoint["rng_ranks"][1]["torch"])

    _torchrun(tmp_path / "resumed", shards, "run.steps=2")  # stops at the step-2 checkpoint
    resumed = _torchrun(tmp_path / "resumed", shards, "run.steps=4", resume=True)
    assert resumed["steps"] == 4 and resumed["nonfinite_skipped"] == 1
    expected, got = _weights(tmp_path / "straight/model.pt"), _weights(tmp_path / "resumed/model.pt")
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)
