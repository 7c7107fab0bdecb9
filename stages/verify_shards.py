"""Check a split's shards against its index.json.

    python -m stages.verify_shards SHARD_DIR/NAME/SPLIT [...] [--json]

For every shard in the index: present, byte size and md5 as recorded, sample count as recorded, every
sample's sha256 member matches its other members (a flipped byte is reported by key; a shard written
before per-sample checksums is reported too: re-render it), and every member decodes whole (a JPEG reaches
its end-of-image marker, a PNG its IEND chunk with intact CRCs; then OpenCV, npy, json). Tars in the folder that the index does not list are
reported too. Problems are printed by shard and key; the exit code is 1 when there is any, else 0.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline import shards as fmt
from stages.cli import stage_parser


def verify_split(folder: str | Path) -> dict[str, list[tuple[str, str]]]:
    """{shard name or 'index.json': [(key, problem), ...]} for each shard with a problem (empty: all good)."""
    folder = Path(folder)
    try:
        doc = fmt.read_index(folder)
    except (FileNotFoundError, ValueError) as e:
        return {fmt.INDEX_NAME: [("<index>", str(e))]}
    report: dict[str, list[tuple[str, str]]] = {}
    listed = set()
    for raw in doc["shards"]:
        entry = fmt.ShardEntry.from_json(raw)
        listed.add(entry.name)
        problems = fmt.verify_entry(folder, entry, decode=True)
        if problems:
            report[entry.name] = problems
    for path in sorted(folder.glob("*.tar")):
        if path.name not in listed:
            report[path.name] = [("<shard>", "not listed in index.json")]
    if doc.get("samples") != sum(int(s["samples"]) for s in doc["shards"]):
        report.setdefault(fmt.INDEX_NAME, []).append(("<index>", "total sample count disagrees with shards"))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser("verify_shards", __doc__)
    parser.add_argument("folder", nargs="+", help="SHARD_DIR/NAME/SPLIT folder(s) holding index.json")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    bad = 0
    for folder in args.folder:
        report = verify_split(folder)
        bad += sum(len(v) for v in report.values())
        if args.json:
            print(json.dumps({"folder": folder, "problems": report}, indent=1))
            continue
        if not report:
            n = len(fmt.read_index(folder)["shards"])
            print(f"{folder}: OK ({n} shards)")
        for shard, problems in report.items():
            for key, message in problems:
                print(f"{folder}/{shard}: {key}: {message}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
