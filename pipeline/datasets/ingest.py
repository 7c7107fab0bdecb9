"""Turn one dataset's raw annotation files into ``MANIFEST_DIR/<name>/<split>.parquet`` + ``rejects.parquet``.

Which files and formats make up each split comes from the source manifest's ``ingest.splits``. Paths:
annotations relative to ``RAW_DIR``; images relative to the dataset root ``RAW_DIR/<name>``. A file that
can't be read at all becomes one reject record (field ``<file>``) and the rest of the dataset goes on; a
split whose annotation file is absent is skipped with a message (e.g. H36M before the user placed it).
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dask.bag as db
import pyarrow.parquet as pq

from pipeline.safe_pickle import FileReadError, UnsafePickleError

from .coco import parse_coco_json
from .humandata import parse_humandata
from .pw3d import parse_pw3d_sequence
from .rows import Block, concat, rejects_table, screen, to_table
from .schema import validate_manifest, write_parquet_atomic
from .sources import IngestSplit, Source
from .spin_npz import IngestError, parse_spin_npz
from .up3d import parse_up3d

# Files per worker process below which Dask's process start-up costs more than it saves.
_MIN_FILES_FOR_DASK = 8


# What reading one damaged / truncated / wrong annotation file may raise; each becomes a file-level reject.
FILE_ERRORS: tuple[type[BaseException], ...] = (
    IngestError,  # our own checks (names file and key)
    FileReadError,  # npz: truncated, bad CRC, not a zip
    pickle.UnpicklingError,  # includes UnsafePickleError (a refused global)
    OSError,
    EOFError,
    ValueError,  # includes json.JSONDecodeError, UnicodeDecodeError
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    AssertionError,  # pycocotools asserts on a JSON that is not a dict
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    MemoryError,  # a corrupt header asking for an absurd array
    LookupError,  # an unknown text encoding named inside a file
    NotImplementedError,  # zipfile, for a damaged compression-method field
)


@dataclass
class IngestSummary:
    """What one ingest run did.

    rows: split -> rows written; rejects: (field, reason kind) -> count; examples: (field, reason kind) ->
    the full reason of the first such reject; file_rejects: (file, full reason) of every file that could
    not be read at all; skipped: split -> why it was not ingested.
    """

    dataset: str
    rows: dict[str, int] = field(default_factory=dict)
    rejects: Counter = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)
    file_rejects: list[tuple[str, str]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def add_rejects(self, records: list[dict]) -> None:
        for r in records:
            if r["field"] == FILE_FIELD:
                self.file_rejects.append((r["file"], r["reason"]))
                continue
            key = (r["field"], _reason_kind(r["reason"]))
            self.rejects[key] += 1
            self.examples.setdefault(key, r["reason"])

    def lines(self) -> list[str]:
        out = [f"{self.dataset}/{s}: {n} rows" for s, n in self.rows.items()]
        out += [f"{self.dataset}/{s}: skipped, {why}" for s, why in self.skipped.items()]
        out += [f"{self.dataset}: file rejected: {f}: {why}" for f, why in self.file_rejects]
        total = sum(self.rejects.values())
        out.append(f"{self.dataset}: {total} rejected row(s)")
        for key, n in sorted(self.rejects.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  {n:8d}  {key[0]}: {self.examples[key]}" + (" (first of these)" if n > 1 else ""))
        return out


FILE_FIELD = "<file>"


def _parse_file(fmt: str, path: Path, dataset: str, image_root: str, label: str) -> Block:
    if fmt == "spin_npz":
        return parse_spin_npz(path, dataset, image_root, label)
    if fmt == "pw3d_pkl":
        return parse_pw3d_sequence(path, image_root, label)
    if fmt == "up3d":
        return parse_up3d(path, image_root, label)
    if fmt == "coco_json":
        return parse_coco_json(path, dataset, image_root, label)
    if fmt == "humandata":
        return parse_humandata(path, dataset, image_root, label)
    raise ValueError(f"unknown ingest format {fmt!r}")


def _parse_or_reject(job: tuple[str, Path, str, str, str]) -> Block | dict:
    """Parse one file; a file-level failure comes back as one reject record instead of an exception."""
    fmt, path, dataset, image_root, label = job
    try:
        return _parse_file(fmt, path, dataset, image_root, label)
    except FILE_ERRORS as e:
        own = isinstance(e, IngestError | FileReadError | UnsafePickleError)
        reason = str(e) if own else f"cannot read file: {type(e).__name__}: {e}"
        return {"sample_id": "", "source_row": label, "file": label, "field": FILE_FIELD, "reason": reason}


def _split_files(split: IngestSplit, root: Path) -> list[Path]:
    path = root / split.annotations
    if split.format == "pw3d_pkl" and path.is_dir():
        return sorted(path.glob("*.pkl"))
    return [path] if path.is_file() else []


def _map(fn: Callable, jobs: list, workers: int | None) -> list:
    """``fn`` over ``jobs``, in order; across Dask worker processes when there are enough files."""
    if workers == 1 or len(jobs) < _MIN_FILES_FOR_DASK:
        return [fn(j) for j in jobs]
    bag = db.from_sequence(jobs, npartitions=min(len(jobs), 4 * (workers or 2)))
    return bag.map(fn).compute(scheduler="processes", num_workers=workers)


def _reason_kind(reason: str) -> str:
    return reason.split(":")[0].split(" (")[0]


def ingest_dataset(
    source: Source,
    root: str | Path,
    out: str | Path,
    *,
    splits: list[str] | None = None,
    workers: int | None = None,
    check_images: bool = True,
) -> IngestSummary:
    """Ingest every configured split of ``source`` from ``root`` (RAW_DIR) into ``out`` (MANIFEST_DIR).

    Writes ``out/<name>/<split>.parquet`` (validated against the contract) and ``out/<name>/rejects.parquet``
    atomically; the same inputs give byte-identical files.
    """
    root, out = Path(root), Path(out)
    dataset_dir = root / source.name
    summary = IngestSummary(source.name)
    all_rejects: list[dict] = []
    if not source.splits:
        raise IngestError(f"{source.path}: no ingest.splits configured for {source.name!r}")
    unknown = sorted(set(splits or ()) - {s.split for s in source.splits})
    if unknown:
        known = [s.split for s in source.splits]
        raise IngestError(f"{source.path}: no split(s) {unknown} in ingest.splits (has {known})")
    for split in source.splits:
        if splits is not None and split.split not in splits:
            continue
        files = _split_files(split, root)
        if not files:
            owner = split.annotations.split("/")[0]
            summary.skipped[split.split] = (
                f"no annotation file at {root / split.annotations} "
                f"(fetch or place it: python -m stages.fetch --dataset {owner} --root {root})"
            )
            continue
        jobs = [
            (split.format, f, source.name, split.image_root, f.relative_to(root).as_posix()) for f in files
        ]
        parsed = _map(_parse_or_reject, jobs, workers)
        blocks = [p for p in parsed if isinstance(p, Block)]
        rejects = [p for p in parsed if isinstance(p, dict)]
        good, row_rejects = screen(concat(blocks), dataset_dir, check_images=check_images)
        rejects += row_rejects
        table = to_table(good, source.name, split.split)
        validate_manifest(table, where=f"{source.name}/{split.split}")
        write_parquet_atomic(table, out / source.name / f"{split.split}.parquet")
        summary.rows[split.split] = table.num_rows
        for r in rejects:
            r["split"] = split.split
        summary.add_rejects(rejects)
        all_rejects += rejects
    if summary.rows:
        rejects_path = out / source.name / "rejects.parquet"
        kept = _rejects_of_other_splits(rejects_path, set(summary.rows))
        write_parquet_atomic(rejects_table(kept + all_rejects), rejects_path)
    return summary


def _rejects_of_other_splits(path: Path, rewritten: set[str]) -> list[dict]:
    """Reject records already on disk for splits this run did not rewrite (e.g. with ``splits=[...]``)."""
    if not path.is_file():
        return []
    return [r for r in pq.read_table(path).to_pylist() if r["split"] not in rewritten]


def summary_json(summary: IngestSummary) -> str:
    """Machine-readable summary (rows per split, reject counts with one full reason each, file rejects,
    skipped splits)."""
    return json.dumps(
        {
            "dataset": summary.dataset,
            "rows": summary.rows,
            "skipped": summary.skipped,
            "rejects": {f"{f}: {r}": n for (f, r), n in sorted(summary.rejects.items())},
            "reject_examples": {f"{f}: {r}": why for (f, r), why in sorted(summary.examples.items())},
            "file_rejects": {f: why for f, why in summary.file_rejects},
        },
        indent=1,
    )
