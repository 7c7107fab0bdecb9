"""Download and verify one dataset's raw files as listed in its source manifest.

    python -m stages.fetch --dataset lsp --root data/raw
    python -m stages.fetch --list

Files land under RAW_DIR/<dataset>/ exactly as the manifest names them. Downloads resume (HTTP Range) after an
interruption; files are checked against the published size/sha256/md5 (a mismatch is moved aside to
<name>.bad-<timestamp>, never deleted, and a download that mismatched is not repeated while that copy is
kept: delete it to try again); archives marked `extract` are unpacked once, and a file that is no archive
(e.g. an HTML login page saved under the archive's name) is moved aside the same way. Files that need a login
(Human3.6M, MPI-INF-3DHP) cannot be downloaded: the stage checks what you placed and prints exactly which
files to put where. Rerunning is cheap: verified files are neither downloaded nor hashed again.
Exit status: 0 when every file is in place and verified, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.datasets.download import fetch_source
from pipeline.datasets.sources import DEFAULT_SOURCES_DIR, SourceError, list_sources, load_source
from stages.cli import stage_parser


def build_parser() -> argparse.ArgumentParser:
    p = stage_parser("fetch", __doc__)
    p.add_argument("--dataset", help="dataset name (a manifests/sources/NAME.yaml); see --list")
    p.add_argument("--root", default="data/raw", help="RAW_DIR: files go to RAW_DIR/<dataset>/")
    p.add_argument(
        "--sources",
        default=str(DEFAULT_SOURCES_DIR),
        help="folder of source manifests (default: the repository's manifests/sources)",
    )
    p.add_argument("--retries", type=int, default=2, help="resume attempts per file after a broken transfer")
    p.add_argument("--no-extract", action="store_true", help="verify archives but don't unpack them")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    p.add_argument("--list", action="store_true", help="list the datasets with a source manifest and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        for name in list_sources(args.sources):
            src = load_source(name, args.sources)
            gate = "login required" if src.login_required else "open download"
            print(f"{name:16s} {gate:15s} {src.licence}")
        return 0
    if not args.dataset:
        build_parser().error("--dataset is required (or --list)")
    try:
        source = load_source(args.dataset, args.sources)
    except SourceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{source.name}: {source.title}\n  licence: {source.licence} ({source.licence_url or 'no URL'})")
    report = fetch_source(
        source, args.root, retries=args.retries, progress=not args.no_progress, extract=not args.no_extract
    )
    for r in report.results:
        print(f"[{r.status}] {r.message}")
    if not report.ok:
        n = sum(r.status not in ("ok", "downloaded", "placed") for r in report.results)
        print(f"{source.name}: {n} of {len(report.results)} file(s) not in place; see above", file=sys.stderr)
        return 1
    print(f"{source.name}: all {len(report.results)} file(s) in place")
    return 0


if __name__ == "__main__":
    sys.exit(main())
