"""Fault suite, DVC: a render killed in the middle of `dvc repro` keeps its verified shards on the next
`dvc repro` (the shard outputs are `persist: true`), and without that flag DVC would delete them first."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pipeline import shards as fmt
from tests.test_faults_data import raw  # noqa: F401 - the module-scoped toy dataset fixture

REPO = Path(__file__).resolve().parents[1]
DELAY_ENV = "DANET_TEST_RENDER_DELAY"


def slow_renderer(rows, crop_transforms, crop_size):
    """The keypoint-disk stand-in renderer, slowed down per call so that a kill lands mid-render."""
    from tests.fixtures_data.renderers import keypoint_disk_renderer

    time.sleep(float(os.environ.get(DELAY_ENV, "0")))
    return keypoint_disk_renderer(rows, crop_transforms, crop_size)


RENDER = (
    "python -m stages.render_iuv --dataset synth --root raw/synth --manifests manifests --out shards "
    "--split train --workers 0 --crop-size 64 --shard-size 2 --no-progress "
    "--renderer tests.test_faults_dvc:slow_renderer"
)


def test_the_real_pipeline_marks_every_shard_output_persistent():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    outs = [*stages["render_synth"]["outs"], *stages["render_iuv"]["do"]["outs"]]
    assert [next(iter(o.values())).get("persist") for o in outs] == [True, True]


def project(raw: Path, where: Path, persist: bool) -> Path:  # noqa: F811
    """A tiny DVC project: the toy dataset and one render stage whose output is (or is not) persistent."""
    shutil.copytree(raw / "raw", where / "raw")
    shutil.copytree(raw / "manifests", where / "manifests")
    out = {"shards/synth": {"cache": False, **({"persist": True} if persist else {})}}
    stage = {"cmd": RENDER, "deps": ["manifests/synth"], "outs": [out]}
    (where / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"render": stage}}))
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=where, check=True)
    return where


def listed(folder: Path) -> list[str]:
    try:
        return [s["name"] for s in fmt.read_index(folder)["shards"]]
    except (FileNotFoundError, ValueError):
        return []


def planned(proj: Path) -> int:
    """Shards of 2 rows over the train manifest."""
    import pyarrow.parquet as pq

    rows = pq.read_metadata(proj / "manifests" / "synth" / "train.parquet").num_rows
    return -(-rows // 2)


def kill_mid_render(proj: Path, env: dict) -> dict[str, tuple[int, int, bytes]]:
    """Starts `dvc repro`, SIGKILLs its whole process group once two shards are listed, and returns those
    shards' (inode, mtime, bytes)."""
    folder = proj / "shards" / "synth" / "train"
    process = subprocess.Popen(
        ["dvc", "repro"], cwd=proj, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while len(listed(folder)) < 2:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("dvc repro ended (or hung) before two shards were written")
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(30)
    names = listed(folder)
    assert 2 <= len(names) < planned(proj), names  # killed in the middle
    return {
        n: ((folder / n).stat().st_ino, (folder / n).stat().st_mtime_ns, (folder / n).read_bytes())
        for n in names
    }


def rerun(proj: Path, env: dict) -> dict:
    done = subprocess.run(["dvc", "repro"], cwd=proj, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"out"')]
    assert len(summaries) == 1, done.stdout
    return summaries[0]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dvc") is None, reason="the dvc command is not installed")
@pytest.mark.parametrize("persist", [True, False])
def test_dvc_repro_after_a_kill_mid_render_keeps_the_verified_shards(raw, tmp_path, persist):  # noqa: F811
    proj = project(raw, tmp_path / "proj", persist)
    env = {**os.environ, "PYTHONPATH": str(REPO), DELAY_ENV: "0.6"}
    before = kill_mid_render(proj, env)
    summary = rerun(proj, {**env, DELAY_ENV: "0"})
    folder = proj / "shards" / "synth" / "train"
    total = planned(proj)
    assert summary["shards"] == total and len(listed(folder)) == total
    if not persist:  # the contrast: DVC deleted the output before rerunning, so everything was redone
        assert summary["shards_kept"] == 0
        return
    assert summary["shards_kept"] == len(before) and summary["shards_built"] == total - len(before)
    for name, (inode, mtime, data) in before.items():  # the same files, untouched
        stat = (folder / name).stat()
        assert (stat.st_ino, stat.st_mtime_ns) == (inode, mtime) and (folder / name).read_bytes() == data
    from stages.verify_shards import main as verify

    assert verify([str(folder)]) == 0
    straight = tmp_path / "straight"
    from stages.render_iuv import main as render_iuv

    args = RENDER.split()[3:]
    args[args.index("--out") + 1] = str(straight)
    args[args.index("--root") + 1] = str(proj / "raw" / "synth")
    args[args.index("--manifests") + 1] = str(proj / "manifests")
    assert render_iuv(args) == 0
    for name in listed(folder) + ["index.json"]:  # resumed == rendered in one go, byte for byte
        assert (straight / "synth" / "train" / name).read_bytes() == (folder / name).read_bytes(), name
