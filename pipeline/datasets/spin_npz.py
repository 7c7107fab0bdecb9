"""SPIN-style annotation ``.npz`` files (h36m, lsp, lsp_extended, mpii, coco, mpi_inf_3dhp, 3dpw, synth).

Keys (N rows): ``imgname`` (N,) str, ``center`` (N,2), ``scale`` (N,), optional ``part`` (N,24,3) 2D
keypoints in SPIN-24 order with visibility, ``S`` (N,24,4) 3D joints + confidence, ``pose`` (N,72),
``shape`` (N,10), ``has_smpl`` (N,), ``gender`` (N,) 'm'/'f', ``valid_fit`` (N,); ``openpose`` (N,25,3) is
not part of the manifest and ignored. Rules, following SPIN's own dataset class:

- ``has_smpl``: the ``has_smpl`` key if present, else 1 when both ``pose`` and ``shape`` exist, else 0;
  and-ed with ``valid_fit`` when that key exists. Pose/betas of rows without SMPL are stored as zeros.
- ``has_kp3d`` = ``S`` present. Missing ``part`` means no 2D keypoints (visibility 0).
- Known quirks handled: float64 keypoints next to float32 fits (all read as float64, stored float32); LSP
  fills only joints 0-13 of ``part`` (the rest stay zero-visibility); numbers stored as strings (hand-made
  files) are parsed per row, and a row whose value isn't a number is rejected naming the key.
- Object members (e.g. ``imgname`` saved as Python strings) are read through the restricted unpickler of
  :mod:`pipeline.safe_pickle`; one naming anything but numpy arrays and plain containers, a truncated file or
  a member failing its CRC make the whole file a reject (:class:`IngestError` with the reason).
- A key whose per-row shape is wrong rejects every row with that reason (the file can't be trusted for that
  field); a key whose length differs from ``imgname`` is a file-level :class:`IngestError`.

Sample ids: ``<dataset>_<imgname without extension and a leading 'images/'>``, every non [A-Za-z0-9_-] run
replaced by '_' (so H36M's ``S1_Directions_1.54138969_000001`` becomes ``..._1_54138969_000001``); when one
image holds several people, each gets ``_p<k>`` (k = order of its rows in the file).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np

from pipeline.safe_pickle import FileReadError, UnsafePickleError, load_npz

from .rows import Block, sanitize_id

_SHAPES = {"center": (2,), "scale": (), "part": (24, 3), "S": (24, 4), "pose": (72,), "shape": (10,)}


class IngestError(ValueError):
    """A whole annotation file can't be read; the message names the file and the key."""


def _numeric(
    block: Block, arr: np.ndarray, key: str, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """``arr`` as float64 (N, *shape) and a mask of rows that parsed; bad rows are rejected on ``block``."""
    n = block.n
    ok = np.ones(n, bool)
    if arr.shape[1:] != shape:
        block.reject(slice(None), key, f"{key} has per-row shape {arr.shape[1:]}, expected {shape}")
        return np.zeros((n, *shape)), np.zeros(n, bool)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64), ok
    out = np.zeros((n, *shape))
    for i in range(n):  # strings/bytes: parse each value, reject the rows that aren't numbers
        try:
            out[i] = np.asarray(arr[i]).astype(np.float64)
        except (TypeError, ValueError):
            ok[i] = False
            value = arr[i] if arr[i].ndim == 0 else arr[i].ravel()[0]
            block.reject(i, key, f"non-numeric {key}: {str(value)[:40]!r}")
    return out, ok


def _str(value) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _genders(values: np.ndarray) -> list[str]:
    """'m'/'f'/'n' per row: strings by first letter ('male' -> 'm'); numbers in SPIN's internal code
    (0 male, 1 female); anything else neutral."""
    if values.dtype.kind in "fiub":
        return ["m" if v == 0 else "f" if v == 1 else "n" for v in values.tolist()]
    letters = [_str(v).strip().lower()[:1] for v in values]
    return [x if x in ("m", "f") else "n" for x in letters]


def name_fields(dataset: str, imgname: str) -> tuple[str, str, str]:
    """(action, subject, sequence) parsed from a SPIN ``imgname`` where the dataset encodes them."""
    stem = PurePosixPath(imgname).stem
    if dataset == "h36m":
        m = re.fullmatch(r"(S\d+)_(.+?)(?:[_ ]\d+)?\.(\d+)_\d+", stem)
        if m:
            return m.group(2), m.group(1), stem.rsplit("_", 1)[0]
    parts = PurePosixPath(imgname).parts
    if dataset == "mpi_inf_3dhp" and len(parts) >= 4 and parts[0].startswith("S"):
        return "", parts[0], "/".join(p for p in parts[1:-1] if p != "imageFrames")
    if dataset == "mpi_inf_3dhp" and len(parts) >= 3 and parts[0] == "mpi_inf_3dhp_test_set":
        return "", parts[1], parts[1]
    if dataset == "3dpw" and len(parts) >= 2:
        return "", "", parts[-2]
    return "", "", ""


def sample_ids(dataset: str, imgnames: list[str]) -> list[str]:
    """Stable ids for the rows of one file (see module docstring)."""
    bases = []
    for name in imgnames:
        p = PurePosixPath(name)
        parts = p.parts[1:] if p.parts and p.parts[0] == "images" and len(p.parts) > 1 else p.parts
        bases.append(f"{dataset}_{sanitize_id('/'.join(parts).rsplit('.', 1)[0])}")
    counts = Counter(bases)
    seen: Counter = Counter()
    out = []
    for b in bases:
        if counts[b] > 1:
            out.append(f"{b}_p{seen[b]}")
            seen[b] += 1
        else:
            out.append(b)
    return out


def parse_spin_npz(path: Path, dataset: str, image_root: str, file_label: str) -> Block:
    """Read one SPIN-style npz into a :class:`Block` (see module docstring for the rules)."""
    try:
        arrays = load_npz(path)  # object members only through the restricted unpickler
    except (FileReadError, UnsafePickleError) as e:
        raise IngestError(str(e)) from e
    for key in ("imgname", "center", "scale"):
        if key not in arrays:
            raise IngestError(f"{path}: required key {key!r} missing (has {sorted(arrays)})")
    imgnames = [_str(v) for v in arrays["imgname"].reshape(-1)]
    n = len(imgnames)
    for key, arr in arrays.items():
        if arr.ndim == 0 or len(arr) != n:
            raise IngestError(f"{path}: key {key!r} has {arr.shape} rows, imgname has {n}")
    block = Block(n, file_label, source_names={"kp2d": "part", "kp3d": "S", "betas": "shape"})
    block.source_row[:] = [f"{file_label}:{i}" for i in range(n)]
    block.sample_id[:] = sample_ids(dataset, imgnames)
    block.image_path[:] = [str(PurePosixPath(image_root, name)) for name in imgnames]
    for i, name in enumerate(imgnames):
        block.action[i], block.subject[i], block.sequence[i] = name_fields(dataset, name)

    block.center, _ = _numeric(block, arrays["center"], "center", (2,))
    block.scale, _ = _numeric(block, arrays["scale"].reshape(n), "scale", ())
    if "part" in arrays:
        block.kp2d, _ = _numeric(block, arrays["part"], "part", (24, 3))
    if "S" in arrays:
        block.kp3d, ok = _numeric(block, arrays["S"], "S", (24, 4))
        block.has_kp3d = ok
    if "pose" in arrays and "shape" in arrays:
        pose, ok_pose = _numeric(block, arrays["pose"], "pose", (72,))
        betas, ok_betas = _numeric(block, arrays["shape"], "shape", (10,))
        has = np.ones(n, bool)
        if "has_smpl" in arrays:
            flag, ok_flag = _numeric(block, arrays["has_smpl"].reshape(n), "has_smpl", ())
            has = (flag > 0) & ok_flag
        if "valid_fit" in arrays:
            fit, ok_fit = _numeric(block, arrays["valid_fit"].reshape(n), "valid_fit", ())
            has &= (fit > 0) & ok_fit
        has &= ok_pose & ok_betas
        block.has_smpl = has
        block.pose = np.where(has[:, None], pose, 0.0)
        block.betas = np.where(has[:, None], betas, 0.0)
    if "gender" in arrays:
        block.gender[:] = _genders(arrays["gender"].reshape(n))
    return block
