"""Evaluate a trained DaNet checkpoint on a dataset's shards with the paper's protocols.

    python -m stages.evaluate --checkpoint checkpoints/demo/model.pt --dataset synth [--split val]
                              [--shards data/shards] [--out metrics/demo]

Writes OUT/metrics.json and OUT/examples.png (input | ground-truth parts | predicted parts | mesh overlay).
metrics.json: the protocol (model.protocols: Human3.6M p1/p2 and MPI-INF-3DHP score against the 3D
keypoints on 14 / 17 joints, 3DPW against the gendered SMPL meshes; --protocol overrides), MPJPE and
PA-MPJPE, PVE and the paper's PVE-S / PVE-P (pose or shape set to zero in both models) where SMPL ground
truth exists, the alignment errors pve_scale_aligned / pve_procrustes, the same for the mean-pose baseline
and the PA-MPJPE ratio to it, a per-action table when the dataset has actions, and the IUV estimator's part
accuracy, body-segment accuracy and foreground IoU in percent where ground-truth IUV exists.
Figures comparable with papers need real SMPL: --body-model SMPL_FOLDER (gendered ground truth, as 3DPW's
protocol asks) and --h36m-regressor J_regressor_h36m.npy (the field's joints); metrics.json's
protocol.comparable_with_papers says whether they were used. OUT/headline.json holds five of the figures
under short names (for `dvc metrics show`); examples.png has column titles, each row's PA-MPJPE and the
part legend. It prints what the checkpoint was trained on first.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import cv2

from model.evaluation import evaluate, shard_metadata
from model.protocols import Protocol, protocol_for
from model.training.checkpoint import CheckpointError, model_from_checkpoint
from model.training.provenance import checkpoint_provenance, describe
from model.visualize import example_grid
from pipeline.augment import AugmentConfig
from pipeline.loader import Source, make_dataset
from stages.cli import DVC_TRACKED, note_tracked_out, resolve_device, stage_parser

DEFAULT_OUT = Path("metrics/demo")
HEADLINE_FILE = "headline.json"  # the few numbers `dvc metrics show` prints (metrics.json has everything)


def headline(summary: dict) -> dict:
    """The evaluation's main numbers under short names, so that `dvc metrics show` fits a terminal."""
    names = {"pa_mpjpe": "pa_mpjpe", "mpjpe": "mpjpe", "pve_p": "pve_p",
             "pa_mpjpe_ratio_to_mean_pose": "vs_mean_pose", "iuv_part_accuracy": "part_acc"}  # fmt: skip
    return {short: summary[key] for key, short in names.items() if summary.get(key) is not None}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = stage_parser("evaluate", __doc__)
    parser.add_argument("--checkpoint", type=Path, required=True, help="model.pt or last.pt of a run")
    parser.add_argument("--dataset", required=True, help="dataset name (shards under SHARDS/NAME/SPLIT)")
    parser.add_argument("--split", default="val", help="split to evaluate")
    parser.add_argument("--shards", type=Path, default=Path("data/shards"), help="shard root")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="folder for metrics.json, headline.json and examples.png " + DVC_TRACKED,
    )
    parser.add_argument(
        "--body-model", default=None, help="SMPL file/folder (default: the checkpoint's model)"
    )
    parser.add_argument(
        "--h36m-regressor",
        type=Path,
        default=None,
        help="J_regressor_h36m.npy (17 x 6890, SPIN's): the protocol joints of the literature",
    )
    parser.add_argument(
        "--extra-regressor",
        type=Path,
        default=None,
        help="SPIN's J_regressor_extra.npy: SPIN-24 keypoints for an SMPL body (2D keypoint scores)",
    )
    parser.add_argument(
        "--protocol", choices=("auto", "h36m-p1", "h36m-p2", "mpi-inf-3dhp", "3dpw", "mesh", "keypoints"),
        default="auto", help="joints and ground truth (auto: by dataset and split, see model.protocols)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32, help="samples per network batch")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run")
    parser.add_argument("--examples", type=int, default=8, help="rows in examples.png")
    parser.add_argument(
        "--ground-truth-maps",
        action="store_true",
        help="diagnostic: the streams read the ground-truth IUV maps cropped at the true joints, scoring them "
        "as if the IUV estimator were perfect (an upper bound, not a result; the split needs IUV labels)",
    )
    return parser.parse_args(argv)


def chosen_protocol(choice: str, dataset: str, split: str) -> Protocol:
    """The --protocol choice as a Protocol ("auto": the dataset's, model.protocols.protocol_for)."""
    named = {
        "h36m-p1": Protocol("h36m-p1", 14, "keypoints"), "h36m-p2": Protocol("h36m-p2", 14, "keypoints"),
        "mpi-inf-3dhp": Protocol("mpi-inf-3dhp", 17, "keypoints"), "3dpw": Protocol("3dpw", 14, "mesh"),
        "mesh": Protocol(dataset, 14, "mesh"), "keypoints": Protocol(dataset, 14, "keypoints"),
    }  # fmt: skip
    return named[choice] if choice in named else protocol_for(dataset, split)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device("evaluate", args.device)
    if device is None:
        return 2
    note_tracked_out("evaluate", args.out, DEFAULT_OUT)
    folder = args.shards / args.dataset / args.split
    if not (folder / "index.json").is_file():
        print(f"evaluate: no shards at {folder} (index.json missing)", file=sys.stderr)
        return 2
    from pipeline.body import load_body_model

    load = functools.partial(
        load_body_model,
        h36m_regressor=args.h36m_regressor,
        extra_regressor=args.extra_regressor,
        device=device,
    )
    body = load(args.body_model) if args.body_model else None
    try:
        network, config = model_from_checkpoint(args.checkpoint, device=device, body=body)
    except (FileNotFoundError, CheckpointError) as err:
        print(f"evaluate: {err}", file=sys.stderr)
        return 2
    print(f"evaluate: {args.checkpoint}: {describe(checkpoint_provenance(args.checkpoint))}", file=sys.stderr)
    if body is None and (args.h36m_regressor or args.extra_regressor):
        network.attach_body_model(load(config.get("body_model", "anny-smpl24")))

    @functools.lru_cache(maxsize=3)
    def gt_body(gender: str):
        """Ground-truth body per gender: gendered real SMPL when a folder was given, else the network's."""
        if args.body_model and Path(args.body_model).is_dir() and gender in ("m", "f"):
            return load(args.body_model, gender={"m": "male", "f": "female"}[gender])
        return network.body

    dataset = make_dataset(
        [Source(str(folder))], batch_size=args.batch_size, augment=AugmentConfig(enabled=False),
        shuffle=False, onehot=False, seed=0,
    )  # fmt: skip
    summary, records, examples = evaluate(
        network, dataset, shard_metadata(folder), gt_body, device, args.examples, args.ground_truth_maps,
        chosen_protocol(args.protocol, args.dataset, args.split),
    )  # fmt: skip
    summary = {"dataset": args.dataset, "split": args.split, "checkpoint": str(args.checkpoint), **summary}
    if args.ground_truth_maps:
        summary["ground_truth_maps"] = True
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / HEADLINE_FILE).write_text(json.dumps(headline(summary), indent=2) + "\n")
    grid = example_grid(
        examples, network.body.faces.cpu(), [r.get("pa_mpjpe") for r in records[: len(examples)]]
    )
    cv2.imwrite(str(args.out / "examples.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
