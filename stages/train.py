"""Train DaNet on streamed WebDataset shards.

    python -m stages.train --config configs/train/demo.yaml [--out checkpoints/demo] [--resume] [key=value ...]

Overrides use dotted keys of the config, e.g. `optim.lr=3e-4 run.steps=500 model.overrides.image_size=128`.
Writes OUT/last.pt (every run.checkpoint_every steps, atomically), OUT/model.pt (the final network),
OUT/train_log.jsonl (loss terms, learning rate, samples/s) and OUT/train_metrics.json (summary, for DVC).
With --resume the run continues exactly from OUT/last.pt: model, optimiser, schedule, step, RNG and data
order (from OUT/last.prev.pt when last.pt is damaged). Checkpoints load with weights_only=True: a file that
holds code is refused (see python -m stages.export_weights --convert-trusted). Multi-GPU: torchrun --nproc_per_node=N -m stages.train ... (shards are split by rank).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from model.training.checkpoint import CheckpointError
from model.training.config import check_files, load_train_config
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
    parser.add_argument(
        "--extra-regressor", default=None,
        help="SPIN's J_regressor_extra.npy: the SPIN-24 keypoints an SMPL body needs for the keypoint losses",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser.parse_args(argv)


def one_line(err: BaseException) -> str:
    """An exception as one line (KeyError's repr quotes dropped)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_train_config(args.config, args.overrides)
        check_files(config, str(args.config or "config"))
    except (FileNotFoundError, KeyError, TypeError, ValueError) as err:
        print(f"train: bad configuration: {one_line(err)}", file=sys.stderr)
        return 2
    if resolve_device("train", config.run.device) is None:  # run.device=cuda on a machine without CUDA
        return 2
    note_tracked_out("train", args.out, DEFAULT_OUT)
    try:
        body = None
        if args.body_model != "anny-smpl24" or args.extra_regressor:
            from pipeline.body import load_body_model

            body = load_body_model(args.body_model, extra_regressor=args.extra_regressor)
        trainer = Trainer(config, args.out, body=body, body_name=args.body_model)
        if args.resume and trainer.resume():
            print(f"train: resumed from {trainer.resumed_from} at step {trainer.step}", file=sys.stderr)
    except (CheckpointError, FileNotFoundError, KeyError, ValueError) as err:
        print(f"train: {one_line(err)}", file=sys.stderr)
        return 2
    try:
        summary = trainer.run(progress=not args.no_progress)
    except TrainingError as err:
        print(f"train: {one_line(err)}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
