"""Parse one dataset's own annotation files into the project's Parquet manifest schema.

    python -m stages.ingest --dataset 3dpw --root data/raw --out data/manifests

Reads the files listed under `ingest.splits` of manifests/sources/<dataset>.yaml (SPIN .npz, 3DPW sequence
pickles, UP-3D body/joint files, COCO / DensePose-COCO JSON, mmhuman3d HumanData .npz) and writes
OUT/<dataset>/<split>.parquet, one row per person sample (schema: pipeline/datasets/schema.py), plus
OUT/<dataset>/rejects.parquet listing every row left out with the field and the reason (NaN/inf, wrong
shape, non-numeric value, missing image, box outside the image, ...). One bad row never stops the dataset;
counts and full reasons are printed. Pickled data is read with a restricted unpickler (numpy arrays and
plain containers only; see docs/ingest.md). Files are written atomically (mode 0666 minus the umask) and a
rerun on the same input gives identical bytes.
A file that cannot be read at all (truncated or corrupt npz, bad pickle, broken JSON, a pickle naming code)
is one file-level reject with the reason and the other files go on; a row with nothing to learn from (no
visible 2D keypoint, 3D joint, SMPL fit or DensePose point) is a row reject.
Exit status: 0 when at least one row was written; 1 when no row was (annotations not fetched yet, or every
file and row rejected: the reasons are printed); 2 for a bad source manifest or --split.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.datasets.ingest import ingest_dataset, summary_json
from pipeline.datasets.sources import DEFAULT_SOURCES_DIR, SourceError, load_source
from pipeline.datasets.spin_npz import IngestError
from stages.cli import DVC_TRACKED, stage_parser


def build_parser() -> argparse.ArgumentParser:
    p = stage_parser("ingest", __doc__)
    p.add_argument("--dataset", required=True, help="dataset name (a manifests/sources/NAME.yaml)")
    p.add_argument("--root", default="data/raw", help="RAW_DIR holding <dataset>/")
    p.add_argument("--out", default="data/manifests", help="MANIFEST_DIR to write into " + DVC_TRACKED)
    p.add_argument("--sources", default=str(DEFAULT_SOURCES_DIR), help="folder of source manifests")
    p.add_argument("--split", action="append", help="only this split (repeatable); default: all")
    p.add_argument("--workers", type=int, default=None, help="Dask worker processes for many-file formats")
    p.add_argument(
        "--no-image-check", action="store_true", help="skip the image-exists / box-in-image checks"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        source = load_source(args.dataset, args.sources)
        summary = ingest_dataset(
            source,
            args.root,
            args.out,
            splits=args.split,
            workers=args.workers,
            check_images=not args.no_image_check,
        )
    except (SourceError, IngestError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary_json(summary) if args.json else "\n".join(summary.lines()))
    empty = [s for s, n in summary.rows.items() if n == 0]
    if summary.total_rows == 0:
        why = "no annotation file found" if not summary.rows else "every row and file was rejected"
        print(f"error: {args.dataset}: no rows ingested ({why}; see the reasons above)", file=sys.stderr)
        return 1
    if empty:
        print(
            f"warning: {args.dataset}: split(s) {empty} have no rows (see the reasons above)", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
