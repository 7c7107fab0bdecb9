"""Render ground-truth IUV maps.

    python -m stages.render_iuv --dataset NAME --root RAW_DIR/NAME --manifests MANIFEST_DIR --out SHARD_DIR
    python -m stages.render_iuv --demo OUT.png

Dataset mode crops every person of the dataset's Parquet manifests, renders its IUV map from its SMPL fit
at crop resolution (camera fitted to its 2D keypoints) and writes reproducible WebDataset shards
OUT/NAME/SPLIT/NAME-SPLIT-000000.tar ... plus index.json, on a Dask cluster; reruns skip verified shards.
The body model is the built-in open one unless DANET_BODY_MODEL (SMPL file or folder) and
DANET_DENSE_PARTS (DensePose's UV_Processed.mat) say otherwise. Demo mode writes a picture of the default
body in a few poses: shaded | I | U | V.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.render_job import add_dataset_arguments, main_dataset
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dataset:
        if resolve_device("render_iuv", args.device) is None:
            return 2
        main_dataset(args)
        return 0
    if args.size < 8:
        print(f"render_iuv: --size must be at least 8, got {args.size}", file=sys.stderr)
        return 2
    from pipeline.render.demo import write_demo

    path, source = write_demo(args.demo, size=args.size, backend=args.backend)
    print(f"render_iuv: wrote {path} ({source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
