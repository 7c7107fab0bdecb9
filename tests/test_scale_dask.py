"""render_iuv on a real Dask cluster: `dask scheduler` + two `dask worker` processes started with the CLI.

The shards built through ``--scheduler tcp://127.0.0.1:PORT`` must be byte-identical to the in-process
build (``--workers 0``): shard membership and bytes are a pure function of the sorted manifest, so where a
task runs must not show in the output.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_scale_helpers import REPO, child_env, stop_tree

STARTUP_TIMEOUT_S = 90
RENDER_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    handle = log.open("wb")
    try:
        return subprocess.Popen(args, cwd=REPO, env=child_env(), stdout=handle, stderr=subprocess.STDOUT)
    finally:
        handle.close()


def _wait_for_workers(address: str, n: int, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    from distributed import Client

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        dead = [log for p, log in zip(procs, logs) if p.poll() is not None]
        if dead:
            raise AssertionError(f"cluster process exited early:\n{dead[0].read_text()[-3000:]}")
        try:
            with Client(address, timeout=5) as client:
                client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
                return
        except (OSError, TimeoutError):
            time.sleep(1.0)
    raise AssertionError(f"{n} workers did not join {address} in {STARTUP_TIMEOUT_S} s")


def _tasks_seen_by_scheduler(address: str) -> set[str]:
    """Keys of the render tasks the external scheduler has a record of (its transition log)."""
    from distributed import Client

    def keys(dask_scheduler) -> list[str]:
        return sorted({str(t[0]) for t in dask_scheduler.transition_log if str(t[0]).startswith("render-")})

    with Client(address, timeout=10) as client:
        return set(client.run_on_scheduler(keys))


def _render(args: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-m", "stages.render_iuv", *args], cwd=REPO, env=child_env(),
                            capture_output=True, text=True, timeout=RENDER_TIMEOUT_S)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_render_iuv_on_external_dask_cluster_matches_in_process_build(tmp_path):
    from stages.ingest import main as ingest
    from stages.synthesize import main as synthesize

    raw, manifests = tmp_path / "raw", tmp_path / "manifests"
    assert synthesize(["--out", str(raw / "synth"), "--n", "14", "--size", "96", "--no-progress"]) == 0
    assert ingest(["--dataset", "synth", "--root", str(raw), "--out", str(manifests)]) == 0
    common = ["--dataset", "synth", "--root", str(raw / "synth"), "--manifests", str(manifests),
              "--split", "train", "--shard-size", "4", "--crop-size", "64", "--no-progress"]  # fmt: skip

    local = _render([*common, "--out", str(tmp_path / "local"), "--workers", "0"])
    assert local["shards_built"] >= 3

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = [tmp_path / "scheduler.log", tmp_path / "worker0.log", tmp_path / "worker1.log"]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_spawn(["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                             "--no-dashboard", "--no-show"], logs[0]))  # fmt: skip
        for i in (1, 2):
            procs.append(_spawn(["dask", "worker", address, "--nthreads", "1", "--nworkers", "1",
                                 "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "0",
                                 "--local-directory", str(tmp_path / f"dask-worker{i}"),
                                 "--name", f"w{i}"], logs[i]))  # fmt: skip
        _wait_for_workers(address, 2, procs, logs)
        remote = _render([*common, "--out", str(tmp_path / "remote"), "--scheduler", address])
        seen = _tasks_seen_by_scheduler(address)
    finally:
        for proc in reversed(procs):
            stop_tree(proc.pid)

    assert remote["shards_built"] == local["shards_built"] and remote["samples"] == local["samples"]
    assert len(seen) == local["shards_built"], "every shard task went through the external scheduler"
    local_dir, remote_dir = tmp_path / "local/synth/train", tmp_path / "remote/synth/train"
    tars = sorted(p.name for p in local_dir.glob("*.tar"))
    assert tars and tars == sorted(p.name for p in remote_dir.glob("*.tar"))
    for name in tars:
        assert (local_dir / name).read_bytes() == (remote_dir / name).read_bytes(), name
    local_index = json.loads((local_dir / "index.json").read_text())
    remote_index = json.loads((remote_dir / "index.json").read_text())
    assert local_index == remote_index
