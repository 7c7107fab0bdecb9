"""Candidate rows as columns, the checks every dataset shares, and conversion to the manifest table.

Each format parser fills a :class:`Block` (numpy columns, float64 while parsing) and marks rows it could
not parse with :meth:`Block.reject`; :func:`screen` then applies the checks common to all datasets (finite
numbers, positive scale, image present, box overlapping the image, unique ids) and splits the block into
good rows and reject records. :func:`to_table` turns good rows into a :data:`MANIFEST_SCHEMA` table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.conventions import BBOX_UNIT, BOX_PADDING

from .images import image_size
from .schema import BETAS_DIM, MANIFEST_SCHEMA, NUM_KP, OPTIONAL_COLUMNS, POSE_DIM, REJECT_SCHEMA

# Box side = BOX_PADDING (1.2, SPIN's preprocessing) * the longer side of the keypoint box.

_ARRAY_SHAPES: dict[str, tuple[int, ...]] = {
    "center": (2,),
    "scale": (),
    "pose": (POSE_DIM,),
    "betas": (BETAS_DIM,),
    "kp2d": (NUM_KP, 3),
    "kp3d": (NUM_KP, 4),
}
_STRING_COLUMNS = ("sample_id", "image_path", "gender", "action", "subject", "sequence", "source_row")
# every per-row array of a Block (what take/concat carry along)
_ROW_COLUMNS = (
    *_ARRAY_SHAPES,
    "has_smpl",
    "has_kp3d",
    *_STRING_COLUMNS,
    "reason",
    "reason_field",
    "row_file",
)


@dataclass
class Block:
    """``n`` candidate rows of one annotation file, column by column (see schema.py for meanings).

    Float columns are float64 (N, *shape); string columns are object arrays (N,); ``extras`` holds the
    optional DensePose/mask columns as lists of length N (None where absent). ``reason``/``reason_field``
    are None for rows still believed good.
    """

    n: int
    file: str
    center: np.ndarray = field(init=False)
    scale: np.ndarray = field(init=False)
    pose: np.ndarray = field(init=False)
    betas: np.ndarray = field(init=False)
    kp2d: np.ndarray = field(init=False)
    kp3d: np.ndarray = field(init=False)
    has_smpl: np.ndarray = field(init=False)
    has_kp3d: np.ndarray = field(init=False)
    extras: dict[str, list] = field(default_factory=dict)
    # manifest column -> the source file's name for it, so rejects name the field the user can find
    source_names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, shape in _ARRAY_SHAPES.items():
            setattr(self, name, np.zeros((self.n, *shape), np.float64))
        self.has_smpl = np.zeros(self.n, bool)
        self.has_kp3d = np.zeros(self.n, bool)
        for name in _STRING_COLUMNS:
            setattr(self, name, np.full(self.n, "", dtype=object))
        self.gender[:] = "n"
        self.reason = np.full(self.n, None, dtype=object)
        self.reason_field = np.full(self.n, None, dtype=object)
        self.row_file = np.full(self.n, self.file, dtype=object)  # survives concat of several files

    def reject(self, rows: np.ndarray | slice | int, column: str, reason: str) -> None:
        """Mark ``rows`` bad (first reason wins) with the offending ``column`` and a readable reason."""
        idx = np.arange(self.n)[rows]
        idx = np.atleast_1d(idx)
        fresh = idx[self.reason[idx] == None]  # noqa: E711 (elementwise on an object array)
        self.reason[fresh] = reason
        self.reason_field[fresh] = column

    def set_box_from_kp2d(self, factor: float = BOX_PADDING) -> None:
        """center/scale from the visible ``kp2d`` joints (SPIN box); rows with none visible are rejected."""
        self.center, self.scale = box_from_keypoints(self.kp2d, factor)
        self.reject(~(self.kp2d[..., 2] > 0).any(axis=1), "kp2d", "no visible 2D joint to place the box")

    def take(self, idx: np.ndarray) -> Block:
        """A new block with rows ``idx`` (int indices) of this one."""
        out = Block(len(idx), self.file, source_names=self.source_names)
        for name in _ROW_FIELDS:
            setattr(out, name, getattr(self, name)[idx])
        out.extras = {k: [v[i] for i in idx] for k, v in self.extras.items()}
        return out


# every per-row field of a Block, in column order
_ROW_FIELDS = (*_ARRAY_SHAPES, "has_smpl", "has_kp3d", *_STRING_COLUMNS, "reason", "reason_field", "row_file")


def concat(blocks: list[Block]) -> Block:
    """Stack blocks row-wise (extras missing from a block become None)."""
    out = Block(sum(b.n for b in blocks), ",".join(sorted({b.file for b in blocks})))
    if not blocks:
        return out
    out.source_names = {k: v for b in blocks for k, v in b.source_names.items()}
    for name in _ROW_FIELDS:
        setattr(out, name, np.concatenate([getattr(b, name) for b in blocks]))
    keys = sorted({k for b in blocks for k in b.extras})
    out.extras = {k: [v for b in blocks for v in b.extras.get(k, [None] * b.n)] for k in keys}
    return out


def sanitize_id(text: str) -> str:
    """A sample-id fragment: runs of anything but letters, digits, '-' and '_' become one '_'."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")


def box_from_keypoints(kp: np.ndarray, factor: float = BOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """SPIN-style person box from 2D keypoints.

    kp: (N, K, 3) x, y, visibility. Returns center (N, 2) and scale (N,) = factor * longer box side / 200;
    rows without a visible keypoint get NaN (they are rejected by :func:`screen`).
    """
    vis = kp[..., 2] > 0
    big = np.where(vis, 0.0, np.inf)
    lo = np.min(kp[..., :2] + big[..., None], axis=1)
    hi = np.max(kp[..., :2] - big[..., None], axis=1)
    with np.errstate(invalid="ignore"):
        center = (lo + hi) / 2
        scale = factor * np.max(hi - lo, axis=1) / BBOX_UNIT
    none = ~vis.any(axis=1)
    center[none] = np.nan
    scale[none] = np.nan
    return center, scale


NO_LABEL = "nothing to learn from: no visible 2D keypoint, no 3D joints, no SMPL fit, no DensePose points"


def has_label(block: Block) -> np.ndarray:
    """(N,) bool: the row carries at least one training signal (visible 2D keypoint, 3D joint with
    confidence > 0, SMPL pose/shape, or DensePose points)."""
    with np.errstate(invalid="ignore"):
        kp2d = (block.kp2d[..., 2] > 0).any(axis=1)
        kp3d = block.has_kp3d & (block.kp3d[..., 3] > 0).any(axis=1)
    dense = np.array([bool(v) for v in block.extras.get("dp_x", [None] * block.n)], bool)
    return kp2d | kp3d | block.has_smpl.astype(bool) | dense


def screen(block: Block, dataset_dir: Path, check_images: bool = True) -> tuple[Block, list[dict]]:
    """Apply the shared checks; return (good rows, reject records with sample_id/source_row/field/reason).

    Checks in order (a row gets the first failing reason): parser rejects; NaN/inf in any numeric column;
    scale <= 0; no label at all (:func:`has_label`); image file missing; box (center +- 100*scale) not overlapping the image; a sample_id already
    used by an earlier row.
    """
    for name in _ARRAY_SHAPES:
        values = getattr(block, name).reshape(block.n, int(np.prod(_ARRAY_SHAPES[name])))
        label = block.source_names.get(name, name)
        block.reject(~np.isfinite(values).all(axis=1), label, "NaN or inf value")
        # float32 storage: values beyond its range would turn into inf in the table
        too_big = np.abs(np.nan_to_num(values)).max(axis=1, initial=0) > 3e38
        block.reject(too_big, label, "value overflows float32")
    with np.errstate(invalid="ignore"):
        block.reject(~(block.scale > 0), "scale", "scale is not positive")
    block.reject(~has_label(block), "<labels>", NO_LABEL)
    if check_images:
        sizes: dict[str, tuple[int, int] | None] = {}
        for i in np.flatnonzero(block.reason == None):  # noqa: E711
            path = block.image_path[i]
            if path not in sizes:
                sizes[path] = image_size(dataset_dir / path)
            size = sizes[path]
            if size is None:
                block.reject(i, "image_path", f"image file missing or unreadable: {path}")
                continue
            half = 100.0 * block.scale[i]
            (cx, cy), (w, h) = block.center[i], size
            if cx + half <= 0 or cy + half <= 0 or cx - half >= w or cy - half >= h:
                block.reject(i, "center", f"box outside the image ({w}x{h})")
    seen: dict[str, int] = {}
    for i in np.flatnonzero(block.reason == None):  # noqa: E711
        sid = block.sample_id[i]
        if not sid or "." in sid:
            block.reject(i, "sample_id", f"invalid sample id {sid!r}")
        elif sid in seen:
            block.reject(i, "sample_id", f"duplicate sample id (first at {block.source_row[seen[sid]]})")
        else:
            seen[sid] = i
    bad = block.reason != None  # noqa: E711
    rejects = [
        {
            "sample_id": block.sample_id[i] or "",
            "source_row": block.source_row[i],
            "file": block.row_file[i],
            "field": block.reason_field[i],
            "reason": block.reason[i],
        }
        for i in np.flatnonzero(bad)
    ]
    return block.take(np.flatnonzero(~bad)), rejects


def _fixed(values: np.ndarray, width: int) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def to_table(block: Block, dataset: str, split: str) -> pa.Table:
    """Good rows of ``block`` as a :data:`MANIFEST_SCHEMA` table (floats cast to float32)."""
    n = block.n
    columns = {
        "sample_id": pa.array(block.sample_id.tolist(), pa.string()),
        "dataset": pa.array([dataset] * n, pa.string()),
        "split": pa.array([split] * n, pa.string()),
        "image_path": pa.array(block.image_path.tolist(), pa.string()),
        "center": _fixed(block.center, 2),
        "scale": pa.array(block.scale.astype(np.float32)),
        "has_smpl": pa.array(block.has_smpl.astype(bool)),
        "pose": _fixed(block.pose, POSE_DIM),
        "betas": _fixed(block.betas, BETAS_DIM),
        "gender": pa.array(block.gender.tolist(), pa.string()),
        "kp2d": _fixed(block.kp2d, NUM_KP * 3),
        "has_kp3d": pa.array(block.has_kp3d.astype(bool)),
        "kp3d": _fixed(block.kp3d, NUM_KP * 4),
    }
    for name in ("action", "subject", "sequence", "source_row"):
        columns[name] = pa.array(getattr(block, name).tolist(), pa.string())
    for name in OPTIONAL_COLUMNS:
        typ = MANIFEST_SCHEMA.field(name).type
        columns[name] = pa.array(block.extras.get(name, [None] * n), typ)
    return pa.Table.from_pydict(columns, schema=MANIFEST_SCHEMA)


def rejects_table(rejects: list[dict]) -> pa.Table:
    """Reject records (with their ``split``) as a :data:`REJECT_SCHEMA` table."""
    cols = {f.name: [str(r.get(f.name, "")) for r in rejects] for f in REJECT_SCHEMA}
    return pa.Table.from_pydict(cols, schema=REJECT_SCHEMA)
