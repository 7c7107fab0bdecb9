"""Train DaNet on streamed WebDataset shards.

    python -m stages.train --config configs/train/demo.yaml [--out checkpoints/demo] [--resume] [key=value ...]

Overrides use dotted keys of the config, e.g. `optim.lr=3e-4 run.steps=500 model.overrides.image_size=128`.
Writes OUT/last.pt (every run.checkpoint_every steps, atomically), OUT/model.pt (the final network),
OUT/train_log.jsonl (loss terms, learning rate, samples/s) and OUT/train_metrics.json (summary, for DVC).
With --resume the run continues exactly from OUT/last.pt: model, optimiser, schedule, step, RNG and data
order. Multi-GPU: torchrun --nproc_per_node=N -m stages.train ... (shards are split by rank).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from model.training.config import load_train_config
from model.training.loop import Trainer, TrainingError
from stages.cli import DVC_TRACKED, note_tracked_out, resolve_device, stage_parser

DEFAULT_OUT = Path("checkpoints/demo")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = stage_parser("train", __doc__)
    parser.add_argument(
        "--config", type=Path, help="training YAML (configs/train/*.yaml); defaults otherwise"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="run folder " + DVC_TRACKED)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt when it exists")
    parser.add_argument("--body-model", default="anny-smpl24", help="built-in name or SMPL file/folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_train_config(args.config, args.overrides)
    except (FileNotFoundError, KeyError, TypeError, ValueError) as err:
        print(f"train: bad configuration: {err}", file=sys.stderr)
        return 2
    if resolve_device("train", config.run.device) is None:  # run.device=cuda on a machine without CUDA
        return 2
    note_tracked_out("train", args.out, DEFAULT_OUT)
    body = None
    if args.body_model != "anny-smpl24":
        from pipeline.body import load_body_model

        body = load_body_model(args.body_model)
    trainer = Trainer(config, args.out, body=body, body_name=args.body_model)
    if args.resume and trainer.resume():
        print(f"train: resumed at step {trainer.step}", file=sys.stderr)
    try:
        summary = trainer.run(progress=not args.no_progress)
    except TrainingError as err:
        print(f"train: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
