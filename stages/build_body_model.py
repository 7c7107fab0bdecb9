"""Export the built-in open body model "anny-smpl24" from the `anny` package.

    python -m stages.build_body_model [--out pipeline/body/assets/anny_smpl24.npz] [--samples 1000] [--seed 0]

Needs the optional dependency: pip install -e .[anny]. The export is deterministic: the same anny version and
options give the same bytes. The asset is committed, so ordinary users never run this.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

from pipeline.body.smpl_io import BUILTIN_MODELS, write_npz_deterministic
from stages.cli import stage_parser

DEFAULT_OUT = BUILTIN_MODELS["anny-smpl24"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = stage_parser("build_body_model", __doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the .npz asset")
    parser.add_argument(
        "--samples", type=int, default=1000, help="adult phenotypes sampled for the shape PCA"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the phenotype sampling")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("ANNY_CACHE_DIR", str(Path(".cache/anny").resolve()))
    try:
        from pipeline.body.anny_export import ExportConfig, build_asset
    except ImportError as err:
        print(f"error: {err}. Install the optional dependency: pip install -e .[anny]", file=sys.stderr)
        return 2
    try:
        arrays = build_asset(ExportConfig(num_samples=args.samples, seed=args.seed))
    except ImportError as err:
        print(f"error: the `anny` package is needed ({err}); pip install -e .[anny]", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_npz_deterministic(args.out, arrays)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
