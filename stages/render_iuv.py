"""Render ground-truth IUV maps.

    python -m stages.render_iuv --dataset NAME --root RAW_DIR/NAME --manifests MANIFEST_DIR --out SHARD_DIR
    python -m stages.render_iuv --demo OUT.png

Dataset mode crops every person of the dataset's Parquet manifests, renders its IUV map from its SMPL fit
at crop resolution (camera fitted to its 2D keypoints) and writes reproducible WebDataset shards
OUT/NAME/SPLIT/NAME-SPLIT-000000.tar ... plus index.json, on a Dask cluster; reruns skip verified shards.
The body is the built-in open one unless --body-model (SMPL file or folder), --dense-parts (DensePose's
UV_Processed.mat) and --extra-regressor (SPIN's J_regressor_extra.npy) say otherwise (flags not given fall
back to DANET_BODY_MODEL, DANET_DENSE_PARTS, DANET_EXTRA_REGRESSOR); index.json records them with their
sha256, and changing any of them re-renders. --renderer plugs in another renderer as module:name
(pipeline/renderers.py; docs/design.md, "The render stage"). Demo mode writes a picture of the default body in a few poses:
shaded | I | U | V.

Arguments are checked before anything runs (one line, exit 2). A row that cannot be read, cropped, fitted
or rendered is a reject naming it in index.json; a split where every row was rejected (a wrong --root:
'file not found' for each) makes the exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.render_job import add_dataset_arguments, main_dataset
from pipeline.renderers import RendererSpecError, find_renderer
from pipeline.shards import read_index
from stages.cli import resolve_device, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("render_iuv", __doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--demo",
        metavar="OUT.png",
        help="write a picture of the default body in a few poses, front and back: shaded | I | U | V",
    )
    parser.add_argument("--size", type=int, default=224, help="side of each rendered tile in pixels")
    parser.add_argument(
        "--backend",
        choices=("auto", "warp", "torch"),
        default="auto",
        help="rasterizer: warp-lang kernel, pure torch, or auto (warp when installed)",
    )
    add_dataset_arguments(parser, mode_group=mode)
    return parser


def dataset_args_problem(args: argparse.Namespace) -> str | None:
    """The first out-of-range or missing --dataset mode argument, as one line, or None."""
    for flag, value, least in (
        ("--shard-size", args.shard_size, 1),
        ("--crop-size", args.crop_size, 8),
        ("--batch-size", args.batch_size, 1),
        ("--workers", args.workers, 0),
    ):
        if value < least:
            return f"{flag} must be at least {least}, got {value}"
    if not args.margin >= 1.0:
        return f"--margin must be at least 1 (crop side / person box side), got {args.margin}"
    if args.root and not Path(args.root).is_dir():
        return f"--root {args.root} is not a folder (manifest image paths are relative to it)"
    try:
        find_renderer(args.renderer)
    except RendererSpecError as err:
        return f"--renderer: {err}"
    return None


def empty_splits(summaries: list[dict]) -> list[str]:
    """One line per split whose manifest had rows but whose shards hold no sample, with the first reason."""
    lines = []
    for summary in summaries:
        if summary["samples"] or not summary["rejects"]:
            continue
        rejects = read_index(summary["out"]).get("rejects", [])
        example = f"; first: {rejects[0]['key']}: {rejects[0]['reason']}" if rejects else ""
        lines.append(f"{summary['out']}: every row was rejected ({summary['rejects']}){example}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dataset:
        if resolve_device("render_iuv", args.device) is None:
            return 2
        if problem := dataset_args_problem(args):
            print(f"render_iuv: {problem}", file=sys.stderr)
            return 2
        empty = empty_splits(main_dataset(args))
        for line in empty:
            print(f"render_iuv: produced nothing: {line}", file=sys.stderr)
        if empty:
            print(
                "render_iuv: (is --root the folder the manifest's image paths are relative to?)",
                file=sys.stderr,
            )
        return 1 if empty else 0
    if args.size < 8:
        print(f"render_iuv: --size must be at least 8, got {args.size}", file=sys.stderr)
        return 2
    from pipeline.render.demo import write_demo

    path, source = write_demo(args.demo, size=args.size, backend=args.backend)
    print(f"render_iuv: wrote {path} ({source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
