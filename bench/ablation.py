"""Ablation runner: train DaNet variants with equal budgets on the synthetic shards and compare them.

    python bench/ablation.py [--steps 600] [--shards data/shards/synth] [--out out/ablation] [--variants a,b]

Each variant is the demo configuration (configs/train/demo.yaml) with switches of the paper's Section 5.4
(model.config.ABLATIONS-style overrides), trained for the same number of steps from the same seed, then
evaluated on the val split like `stages.evaluate`. As in the paper, every variant starts from the same
pretrained IUV estimator (the demo's, kept fixed); --from-scratch trains each one's estimator too (the
first seventh of the steps IUV-only). Prints a Markdown table shaped like the paper's Tables
8-10 (drop strategies, refinement variants) and one JSON line with every figure. Needs `dvc repro` (or the
synthesize/ingest/render_iuv stages) to have built the synthetic shards first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model.evaluation import evaluate, shard_metadata  # noqa: E402
from model.training.config import load_train_config  # noqa: E402
from model.training.loop import Trainer  # noqa: E402
from pipeline.augment import AugmentConfig  # noqa: E402
from pipeline.loader import Source, make_dataset  # noqa: E402

# name -> (tables it is a row of, overrides of model.overrides)
VARIANTS: dict[str, tuple[tuple[str, ...], dict]] = {
    "baseline_global_only": (("decompose",), {"decompose": False, "drop": {"kind": "none"}}),
    "dnet_no_drop": (("decompose", "drop"), {"refine": {"variant": "none"}, "drop": {"kind": "none"}}),
    "dnet_dropout": (("drop",), {"refine": {"variant": "none"}, "drop": {"kind": "dropout"}}),
    "dnet_dropblock": (("drop",), {"refine": {"variant": "none"}, "drop": {"kind": "dropblock"}}),
    "dnet_partdrop": (("drop", "refine"), {"refine": {"variant": "none"}, "drop": {"kind": "partdrop"}}),
    "refine_direct": (("refine",), {"refine": {"variant": "direct"}}),
    "refine_position_implicit": (("refine",), {"refine": {"variant": "position_implicit"}}),
    "refine_position_aided": (("refine",), {"refine": {"variant": "position_aided"}}),
    "refine_position_aided_fixed_edges": (
        ("refine",),
        {"refine": {"variant": "position_aided", "learnable_edges": False}},
    ),
}


def overrides_for(
    variant: dict, shards: Path, steps: int, mean_params: Path, from_scratch: bool = False
) -> list[str]:
    out = [
        f"data.train=[{{path: {shards / 'train'}}}]",
        f"data.val={shards / 'val'}",
        f"run.steps={steps}",
        f"run.checkpoint_every={steps}",
        f"optim.lr_milestones=[{int(steps * 0.75)}]",
        f"model.overrides.mean_params={mean_params}",
    ]
    if from_scratch:
        out += ["model.init.checkpoint=null", f"optim.iuv_only_steps={max(1, steps // 7)}"]
    else:
        out += [
            f"model.init.checkpoint={REPO / 'weights' / 'demo_iuv_estimator.pt'}",
            "optim.iuv_only_steps=0",
        ]
    for section, values in variant.items():
        if not isinstance(values, dict):  # a top-level switch such as decompose
            out.append(f"model.overrides.{section}={json.dumps(values)}")
            continue
        for key, value in values.items():
            out.append(f"model.overrides.{section}.{key}={json.dumps(value)}")
    return out


def run_variant(name: str, args: argparse.Namespace) -> dict:
    tables, variant = VARIANTS[name]
    config = load_train_config(
        REPO / "configs" / "train" / "demo.yaml",
        overrides_for(variant, args.shards, args.steps, args.mean_params, args.from_scratch),
    )
    started = time.perf_counter()
    trainer = Trainer(config, args.out / name)
    trainer.run(progress=not args.no_progress)
    val = args.shards / "val"
    dataset = make_dataset(
        [Source(str(val))],
        batch_size=32,
        augment=AugmentConfig(enabled=False),
        shuffle=False,
        onehot=False,
        seed=0,
    )
    summary, _, _ = evaluate(
        trainer.network, dataset, shard_metadata(val), lambda _: trainer.body, trainer.device, 0
    )
    keys = ("mpjpe", "pa_mpjpe", "pve", "pve_s", "pve_p", "baseline_pa_mpjpe", "pa_mpjpe_ratio_to_mean_pose")
    return {
        "variant": name,
        "tables": list(tables),
        "seconds": round(time.perf_counter() - started, 1),
        **{k: summary.get(k) for k in keys},
    }


def markdown(rows: list[dict]) -> str:
    lines = []
    for table, title in (
        ("decompose", "Global-only baseline vs decomposed perception (D-Net)"),
        ("drop", "Drop strategies on D-Net (cf. Table 8)"),
        ("refine", "Refinement variants (cf. Tables 9-10)"),
    ):
        chosen = [r for r in rows if table in r["tables"]]
        if not chosen:
            continue
        lines += [
            f"### {title}",
            "",
            "| variant | MPJPE | PA-MPJPE | PA-MPJPE / mean pose | PVE | PVE-P |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r['variant']} | {r['mpjpe']} | {r['pa_mpjpe']} | {r['pa_mpjpe_ratio_to_mean_pose']} | {r['pve']} "
            f"| {r['pve_p']} |"
            for r in chosen
        ]
        lines.append("")
    if rows:
        lines.append(f"Mean pose (every variant's baseline): PA-MPJPE {rows[0]['baseline_pa_mpjpe']} mm.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="training steps per variant (equal budgets)")
    parser.add_argument("--shards", type=Path, default=REPO / "data" / "shards" / "synth")
    parser.add_argument(
        "--mean-params", type=Path, default=REPO / "data" / "raw" / "synth" / "mean_params.npz"
    )
    parser.add_argument("--out", type=Path, default=REPO / "out" / "ablation")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS)
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--from-scratch", action="store_true", help="train each variant's IUV estimator instead of the demo's"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n for n in args.variants.split(",") if n]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}")
    if not (args.shards / "train" / "index.json").is_file():
        parser.error(f"no shards at {args.shards / 'train'}: run `dvc repro` first")
    rows = [run_variant(name, args) for name in names]
    print(markdown(rows))
    print(json.dumps({"steps_per_variant": args.steps, "from_scratch": args.from_scratch, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
