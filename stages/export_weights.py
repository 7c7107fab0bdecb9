"""Keep the weights of some of a trained network's modules in a small file that `model.init` can start from.

    python -m stages.export_weights CHECKPOINT --modules iuv partial_heads --out weights.pt
    python -m stages.export_weights --convert-trusted OLD.pt NEW.pt

The file holds those modules' state dict, the training config and the step (no optimiser state): e.g. the
IUV estimator of an IUV-only run, for `model.init.checkpoint=weights.pt` in a later run.

Checkpoints are read with `torch.load(weights_only=True)`: one that holds more than tensors and plain data
(a file from an older version, or one built to run code) is refused. `--convert-trusted OLD NEW` reads OLD
with full unpickling, which can run code from it, so only for a file whose origin you trust, and writes its
content as plain data with a digest to NEW.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from model.training.checkpoint import convert_trusted
from model.training.init import export_modules
from stages.cli import stage_parser


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("export_weights", __doc__)
    parser.add_argument(
        "checkpoint", type=Path, nargs="?", help="a stages.train checkpoint (model.pt or last.pt)"
    )
    parser.add_argument("--modules", nargs="+", default=["iuv", "partial_heads"], help="top-level modules")
    parser.add_argument("--out", type=Path, help="the weights file to write")
    parser.add_argument(
        "--convert-trusted",
        nargs=2,
        type=Path,
        metavar=("OLD", "NEW"),
        help="rewrite a TRUSTED old checkpoint as plain data (full unpickling: it can run code from OLD)",
    )
    args = parser.parse_args(argv)
    if args.convert_trusted:
        if args.checkpoint or args.out:
            parser.error("--convert-trusted OLD NEW takes no CHECKPOINT or --out")
        old, new = args.convert_trusted
        try:
            convert_trusted(old, new)
        except (FileNotFoundError, TypeError, ValueError) as err:
            print(f"export_weights: {err}", file=sys.stderr)
            return 2
        print(json.dumps({"converted": str(old), "out": str(new), "bytes": new.stat().st_size}))
        return 0
    if args.checkpoint is None or args.out is None:
        parser.error("CHECKPOINT and --out are required (or --convert-trusted OLD NEW)")
    try:
        counts = export_modules(args.checkpoint, args.modules, args.out)
    except (FileNotFoundError, KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"export_weights: {message}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), "tensors": counts, "bytes": args.out.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
