"""Process helpers for the multi-process tests (tests/test_scale_*.py): no tests here.

Launchers such as torchrun and the dask nanny may start their children in sessions of their own, so a
process group kill can miss them; these helpers stop the whole tree by pid instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process that imports this checkout's packages (whatever the editable
    install points at), single-threaded numerics, unbuffered output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def stop_tree(pid: int, grace_s: float = 15.0) -> None:
    """SIGTERM ``pid`` and every descendant, then SIGKILL whatever is left after ``grace_s`` seconds."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
