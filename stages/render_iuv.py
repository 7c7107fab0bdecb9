"""Render ground-truth IUV maps: ``python -m stages.render_iuv --demo OUT.png``.

A thin command line over pipeline.render; the dataset mode (crops + IUV shards) will join the demo mode here.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stages.render_iuv",
        description="Render DensePose-style IUV maps (part I, surface coordinates U, V) of body meshes.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--demo",
        metavar="OUT.png",
        help="write a picture of the default body in a few poses, front and back: shaded | I | U | V",
    )
    parser.add_argument("--size", type=int, default=224, help="side of each rendered tile in pixels (224)")
    parser.add_argument(
        "--backend",
        choices=("auto", "warp", "torch"),
        default="auto",
        help="rasterizer: warp-lang kernel, pure torch, or auto (warp when installed)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.size < 8:
        print(f"render_iuv: --size must be at least 8, got {args.size}", file=sys.stderr)
        return 2
    from pipeline.render.demo import write_demo

    path, source = write_demo(args.demo, size=args.size, backend=args.backend)
    print(f"render_iuv: wrote {path} ({source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
