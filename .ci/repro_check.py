"""Does a fresh copy of this tree reproduce dvc.lock's hashes for the cheap stages?

    python .ci/repro_check.py [--stages synthesize ingest_synth render_synth] [--keep DIR]

Copies the working tree's git files (tracked, plus untracked ones that git does not ignore) into a temporary
folder, makes it a git repository of its own and, stage by stage, asks `dvc status` whether dvc.lock is
current for the stage's command, dependencies and parameters there. A current stage is rerun with
`dvc repro --single-item` and its outputs' hashes (md5, size, file count) are compared with the committed
dvc.lock's. A stage whose dvc.lock entry is stale (its code or parameters changed since dvc.lock was
written) cannot be checked: it is reported as skipped, as is every stage after it. Nothing is written into
this tree. Exit status: 0 when every checked stage reproduced (or none could be checked), 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHEAP_STAGES = ("synthesize", "ingest_synth", "render_synth")
OUT_FIELDS = ("md5", "size", "nfiles")


def copy_tree(src: Path, dst: Path) -> None:
    """Copy git's view of `src` (tracked and non-ignored untracked files) to `dst`, as a fresh git repo."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=src, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, names):
        if (src / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)
    git = ["git", "-c", "user.name=repro", "-c", "user.email=repro@localhost"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "copy"]):
        subprocess.run(git + args, cwd=dst, check=True, capture_output=True)


def stale_reasons(status: list) -> list[str]:
    """What makes a stage's dvc.lock entry stale, from its `dvc status --json` list: anything but missing
    outputs (a fresh copy has none) and dependencies that are outputs of earlier stages not yet rerun."""
    reasons = []
    for entry in status:
        if isinstance(entry, str):  # e.g. "changed command", "always changed"
            reasons.append(entry)
            continue
        for kind, changes in entry.items():
            if kind == "changed outs":
                continue
            items = changes.items() if isinstance(changes, dict) else [(changes, "changed")]
            reasons += [f"{kind}: {path} {what}" for path, what in items if what != "deleted"]
    return reasons


def locked_outs(lock: dict, stage: str) -> dict[str, dict]:
    return {o["path"]: {k: o.get(k) for k in OUT_FIELDS} for o in lock["stages"][stage].get("outs", [])}


def check(work: Path, stages: list[str], log=print) -> dict[str, str]:
    """{stage: "reproduced" | "MISMATCH ..." | "skipped ..."} for `stages` in order, inside `work`."""
    committed = yaml.safe_load((work / "dvc.lock").read_text())
    results: dict[str, str] = {}
    for stage in stages:
        if any(r.startswith(("skipped", "MISMATCH")) for r in results.values()):
            results[stage] = "skipped: an earlier stage was not reproduced"
            continue
        status = subprocess.run(
            ["dvc", "status", "--json", stage], cwd=work, capture_output=True, text=True, check=True
        )
        reasons = stale_reasons(json.loads(status.stdout or "{}").get(stage, []))
        if reasons:
            results[stage] = "skipped: dvc.lock is stale for it (" + "; ".join(reasons) + ")"
            log(f"repro_check: {stage}: {results[stage]}")
            continue
        start = time.perf_counter()
        run = subprocess.run(
            ["dvc", "repro", "--single-item", stage], cwd=work, capture_output=True, text=True
        )
        if run.returncode != 0:
            results[stage] = f"MISMATCH: dvc repro failed ({run.stderr.strip()[-500:]})"
            log(f"repro_check: {stage}: {results[stage]}")
            continue
        fresh = locked_outs(yaml.safe_load((work / "dvc.lock").read_text()), stage)
        wanted = locked_outs(committed, stage)
        diffs = [
            f"{p}: {fresh.get(p)} != committed {want}" for p, want in wanted.items() if fresh.get(p) != want
        ]
        seconds = time.perf_counter() - start
        results[stage] = f"MISMATCH: {'; '.join(diffs)}" if diffs else "reproduced"
        log(f"repro_check: {stage}: {results[stage]} ({seconds:.0f} s)")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python .ci/repro_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", nargs="+", default=list(CHEAP_STAGES), help="stages, in pipeline order")
    parser.add_argument("--keep", type=Path, default=None, help="work in this (new) folder and keep it")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="repro_check-"))
    try:
        work.mkdir(parents=True, exist_ok=True)
        copy_tree(ROOT, work)
        env_note = {"DVC_NO_ANALYTICS": "1"}
        os.environ.update(env_note)
        results = check(work, args.stages)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))
    return 1 if any(r.startswith("MISMATCH") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
