"""The one Parquet schema every dataset is ingested into (the contract between ``ingest`` and ``shards``).

One row per person sample. Files: ``MANIFEST_DIR/<dataset>/<split>.parquet`` with :data:`MANIFEST_SCHEMA`,
and ``MANIFEST_DIR/<dataset>/rejects.parquet`` with :data:`REJECT_SCHEMA`. The schema version lives in the
Parquet schema metadata under ``schema_version`` (:data:`SCHEMA_VERSION`); readers must check it.

Columns (all required unless marked nullable; float columns are float32):

=============  ============================  ==========================================================
column         type                          meaning
=============  ============================  ==========================================================
sample_id      string                        stable across runs, unique within (dataset, split), no dots;
                                             the same id in two splits is the same person-frame
                                             (e.g. H36M protocol 2 is a subset of protocol 1)
dataset        string                        dataset name (the source manifest's ``name``)
split          string                        e.g. ``train``, ``test``, ``valid_p1``
image_path     string                        POSIX path relative to the dataset root ``RAW_DIR/<dataset>``
center         fixed_size_list<float32>[2]   person box centre (x, y) in image pixels
scale          float32                       box side / 200 (SPIN convention), > 0
has_smpl       bool                          pose/betas are ground truth (or trusted fits)
pose           fixed_size_list<float32>[72]  SMPL axis-angle, 24 joints x 3, root in the camera frame;
                                             zeros when ``has_smpl`` is false
betas          fixed_size_list<float32>[10]  SMPL shape; zeros when ``has_smpl`` is false
gender         string                        ``m``, ``f`` or ``n`` (neutral / unknown)
kp2d           fixed_size_list<float32>[72]  SPIN-24 keypoints, row-major (24, 3): x, y pixels, visibility
                                             in [0, 1]; joints a dataset lacks have visibility 0
has_kp3d       bool                          ``kp3d`` is ground truth
kp3d           fixed_size_list<float32>[96]  SPIN-24 3D joints, row-major (24, 4): x, y, z metres
                                             (camera frame, as in SPIN's ``S``), confidence; zeros if absent
action         string                        H36M action (``Directions``), else ``""``
subject        string                        H36M/3DHP subject (``S1``), 3DPW person (``p0``), else ``""``
sequence       string                        recording sequence / camera, else ``""``
source_row     string                        where the row came from: ``<file>:<index>`` (``file`` relative
                                             to ``RAW_DIR``) for tracing back to the raw annotation
dp_x, dp_y     list<float32>, nullable       DensePose-COCO points in *image pixels* (converted from the
                                             file's 0..256 box coordinates); null when not annotated
dp_I           list<int8>, nullable          DensePose part index 1..24 of each point
dp_U, dp_V     list<float32>, nullable       DensePose UV in [0, 1] of each point
mask           string, nullable              JSON: ``{"bbox": [x, y, w, h], "segmentation": <COCO polygon
                                             or RLE, image pixels>, "dp_masks": [14 x (COCO RLE in the
                                             256x256 box frame) or null]}``; keys absent when unknown
=============  ============================  ==========================================================

Rejects (``REJECT_SCHEMA``): ``split``, ``sample_id`` (may be ``""`` when not derivable), ``source_row``,
``file``, ``field`` and a human-readable ``reason``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.files import atomic_output

SCHEMA_VERSION = 1

NUM_KP = 24
POSE_DIM = 72
BETAS_DIM = 10
KP2D_DIM = NUM_KP * 3
KP3D_DIM = NUM_KP * 4
GENDERS = ("m", "f", "n")


def _f32_list(n: int) -> pa.DataType:
    return pa.list_(pa.float32(), n)


_FIELDS = [
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("image_path", pa.string(), nullable=False),
    pa.field("center", _f32_list(2), nullable=False),
    pa.field("scale", pa.float32(), nullable=False),
    pa.field("has_smpl", pa.bool_(), nullable=False),
    pa.field("pose", _f32_list(POSE_DIM), nullable=False),
    pa.field("betas", _f32_list(BETAS_DIM), nullable=False),
    pa.field("gender", pa.string(), nullable=False),
    pa.field("kp2d", _f32_list(KP2D_DIM), nullable=False),
    pa.field("has_kp3d", pa.bool_(), nullable=False),
    pa.field("kp3d", _f32_list(KP3D_DIM), nullable=False),
    pa.field("action", pa.string(), nullable=False),
    pa.field("subject", pa.string(), nullable=False),
    pa.field("sequence", pa.string(), nullable=False),
    pa.field("source_row", pa.string(), nullable=False),
    pa.field("dp_x", pa.list_(pa.float32()), nullable=True),
    pa.field("dp_y", pa.list_(pa.float32()), nullable=True),
    pa.field("dp_I", pa.list_(pa.int8()), nullable=True),
    pa.field("dp_U", pa.list_(pa.float32()), nullable=True),
    pa.field("dp_V", pa.list_(pa.float32()), nullable=True),
    pa.field("mask", pa.string(), nullable=True),
]

MANIFEST_SCHEMA = pa.schema(_FIELDS, metadata={b"schema_version": str(SCHEMA_VERSION).encode()})
MANIFEST_COLUMNS: tuple[str, ...] = tuple(f.name for f in _FIELDS)
OPTIONAL_COLUMNS: tuple[str, ...] = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V", "mask")

REJECT_SCHEMA = pa.schema(
    [
        pa.field("split", pa.string(), nullable=False),
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("source_row", pa.string(), nullable=False),
        pa.field("file", pa.string(), nullable=False),
        pa.field("field", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ],
    metadata={b"schema_version": str(SCHEMA_VERSION).encode()},
)


class ManifestError(ValueError):
    """A manifest table or file breaks the contract; the message names the file/column/row."""


def validate_manifest(table: pa.Table, where: str = "manifest") -> None:
    """Check ``table`` against the contract; raise :class:`ManifestError` naming the first problem.

    Checks: schema (names, types, order), schema_version metadata, no nulls in required columns, no dots and
    no duplicates in ``sample_id``, finite floats, ``scale`` > 0, ``gender`` in m/f/n, dp_* lists of equal
    length per row.
    """
    meta = table.schema.metadata or {}
    version = meta.get(b"schema_version")
    if version != str(SCHEMA_VERSION).encode():
        raise ManifestError(f"{where}: schema_version is {version!r}, expected {SCHEMA_VERSION}")
    got = [(f.name, f.type) for f in table.schema]
    want = [(f.name, f.type) for f in MANIFEST_SCHEMA]
    if got != want:
        diff = [f"{g} != {w}" for g, w in zip(got, want) if g != w] or [f"{len(got)} vs {len(want)} columns"]
        raise ManifestError(f"{where}: schema differs from MANIFEST_SCHEMA: {diff[0]}")
    for f in MANIFEST_SCHEMA:
        if not f.nullable and table.column(f.name).null_count:
            raise ManifestError(f"{where}: column {f.name!r} has {table.column(f.name).null_count} nulls")
    if table.num_rows == 0:
        return
    ids = table.column("sample_id")
    if pc.any(pc.match_substring(ids, ".")).as_py():
        bad = [s for s in ids.to_pylist() if "." in s][0]
        raise ManifestError(f"{where}: sample_id {bad!r} contains a dot")
    if pc.count_distinct(ids).as_py() != table.num_rows:
        counts = pc.value_counts(ids)
        dup = [c["values"] for c in counts.to_pylist() if c["counts"] > 1][0]
        raise ManifestError(f"{where}: sample_id {dup!r} is not unique")
    for name in ("center", "pose", "betas", "kp2d", "kp3d", "scale"):
        col = table.column(name)
        values = pc.list_flatten(col) if pa.types.is_fixed_size_list(col.type) else col
        if len(values) and not pc.all(pc.is_finite(values)).as_py():
            raise ManifestError(f"{where}: column {name!r} has NaN or inf values")
    if not pc.all(pc.greater(table.column("scale"), 0)).as_py():
        raise ManifestError(f"{where}: column 'scale' has values <= 0")
    bad_gender = set(table.column("gender").to_pylist()) - set(GENDERS)
    if bad_gender:
        raise ManifestError(f"{where}: column 'gender' has values {sorted(bad_gender)}, expected m/f/n")
    lengths = [
        pc.fill_null(pc.list_value_length(table.column(c)), -1).to_numpy()  # -1: null list
        for c in ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")
    ]
    for c, n in zip(("dp_y", "dp_I", "dp_U", "dp_V"), lengths[1:]):
        if (n != lengths[0]).any():
            raise ManifestError(f"{where}: column {c!r} length differs from dp_x in some row")


def read_manifest(path: str | os.PathLike) -> pa.Table:
    """Read one ``SPLIT.parquet`` written by ``stages.ingest`` and validate it against the contract."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    table = pq.read_table(path)
    validate_manifest(table, where=str(path))
    return table


def write_parquet_atomic(table: pa.Table, path: str | os.PathLike) -> None:
    """Write ``table`` to ``path`` through :func:`atomic_output` (temporary file + atomic rename).

    Writes with fixed options (snappy, no statistics timestamps) so the same table gives the same bytes.
    """
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="snappy", row_group_size=65536)
