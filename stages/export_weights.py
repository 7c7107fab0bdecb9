"""Keep the weights of some of a trained network's modules in a small file that `model.init` can start from.

    python -m stages.export_weights CHECKPOINT --modules iuv partial_heads --out weights.pt

The file holds those modules' state dict, the training config and the step (no optimiser state): e.g. the
IUV estimator of an IUV-only run, for `model.init.checkpoint=weights.pt` in a later run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from model.training.init import export_modules
from stages.cli import stage_parser


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("export_weights", __doc__)
    parser.add_argument("checkpoint", type=Path, help="a stages.train checkpoint (model.pt or last.pt)")
    parser.add_argument("--modules", nargs="+", default=["iuv", "partial_heads"], help="top-level modules")
    parser.add_argument("--out", type=Path, required=True, help="the weights file to write")
    args = parser.parse_args(argv)
    try:
        counts = export_modules(args.checkpoint, args.modules, args.out)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"export_weights: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), "tensors": counts, "bytes": args.out.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
