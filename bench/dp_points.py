"""Dense maps vs DensePose points vs both: the IUV estimator trained alone, same budget, scored on val.

    python -m bench.dp_points --work /tmp/dp_bench --n 600 --steps 400

One synthetic set (stages.synthesize --densepose) is ingested twice: as ``synth`` (SPIN npz: SMPL fits, so
rendered dense IUV maps) and as ``synth_dp`` (its DensePose-COCO json: ~100 points and the coarse masks per
person, no SMPL). The tiny estimator (configs/train/demo.yaml's, from scratch) trains for ``--steps`` IUV-only
steps on (a) the dense shards, (b) the point shards, (c) both mixed half and half; ``stages.evaluate`` then
gives each its part accuracy on the dense val split. Prints one JSON line per run and a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", *args], check=True, stdout=subprocess.DEVNULL)


def prepare(work: Path, n: int, seed: int) -> None:
    raw = work / "raw"
    if not (raw / "synth_dp" / "densepose_val.json").is_file():
        _run("stages.synthesize", "--out", str(raw / "synth_dp"), "--n", str(n), "--seed", str(seed),
             "--densepose", "--no-progress")  # fmt: skip
    if not (raw / "synth").exists():
        os.symlink("synth_dp", raw / "synth")  # the same images and npz, read as the synth source
    for name in ("synth", "synth_dp"):
        _run("stages.ingest", "--dataset", name, "--root", str(raw), "--out", str(work / "manifests"))
        _run("stages.render_iuv", "--dataset", name, "--root", str(raw / name), "--manifests",
             str(work / "manifests"), "--out", str(work / "shards"), "--workers", "0", "--no-progress",
             "--body-model", "anny-smpl24", "--dense-parts", "", "--extra-regressor", "")  # fmt: skip


def train_and_score(work: Path, name: str, sources: list[tuple[str, float]], steps: int, batch: int) -> dict:
    out = work / "runs" / name
    train = (
        "[" + ", ".join(f"{{path: {work / 'shards' / s / 'train'}, weight: {w}}}" for s, w in sources) + "]"
    )
    started = time.perf_counter()
    _run("stages.train", "--config", "configs/train/demo.yaml", "--out", str(out), "--no-progress",
         "model.init.checkpoint=null", f"run.steps={steps}", f"optim.iuv_only_steps={steps}",
         f"run.checkpoint_every={steps}", f"data.batch_size={batch}", f"data.train={train}", f"data.val={work / 'shards/synth/val'}",
         f"model.overrides.mean_params={work / 'raw/synth/mean_params.npz'}")  # fmt: skip
    seconds = time.perf_counter() - started
    _run("stages.evaluate", "--checkpoint", str(out / "model.pt"), "--dataset", "synth", "--split", "val",
         "--shards", str(work / "shards"), "--out", str(out / "eval"), "--examples", "1")  # fmt: skip
    flat = _flatten(json.loads((out / "eval" / "metrics.json").read_text()))
    keys = ("iuv_part_accuracy", "iuv_segment_accuracy", "iuv_foreground_iou")
    return {
        "run": name,
        "steps": steps,
        "batch_size": batch,
        "train_seconds": round(seconds, 1),
        **{k: flat.get(k) for k in keys},
    }


def _flatten(doc, out: dict | None = None) -> dict:
    """The metrics.json leaves by name (the first of each name, wherever it is nested)."""
    out = {} if out is None else out
    for key, value in doc.items() if isinstance(doc, dict) else ():
        if isinstance(value, dict):
            _flatten(value, out)
        else:
            out.setdefault(key, value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (data, shards, runs)")
    parser.add_argument("--n", type=int, default=600, help="synthetic images")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--steps", type=int, default=400, help="IUV-only training steps per run")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    prepare(args.work, args.n, args.seed)
    runs = {
        "dense": [("synth", 1.0)],
        "points": [("synth_dp", 1.0)],
        "both": [("synth", 0.5), ("synth_dp", 0.5)],
    }
    results = []
    for name, sources in runs.items():
        results.append(train_and_score(args.work, name, sources, args.steps, args.batch_size))
        print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"summary": {r["run"]: r["iuv_part_accuracy"] for r in results}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
