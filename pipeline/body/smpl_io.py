"""Reading and writing SMPL-format body-model files.

Three sources give the same :class:`SMPLArrays`:

* the official SMPL ``.pkl`` files (Python 2 pickles holding ``chumpy`` arrays and a scipy sparse regressor),
  read without chumpy (which cannot be installed here and is unmaintained) through the restricted
  unpickler of :mod:`pipeline.safe_pickle`: a file naming any other global is refused, never run;
* ``.npz`` exports of the same arrays (as shipped by SMPL-X's tools and by this project);
* the built-in open model ``anny-smpl24`` (``assets/anny_smpl24.npz``), which also carries dense body parts,
  the vertex mirror map and fitted keypoint regressors.

Every loader checks every array it needs and raises :class:`BodyModelFileError` naming the file and the key,
so that a truncated or wrong file never half-loads.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.body.constants import NUM_JOINTS, SMPL_PARENTS
from pipeline.safe_pickle import ChumpyStub, FileReadError, SafeUnpickler, UnsafePickleError

ASSET_DIR = Path(__file__).resolve().parent / "assets"
BUILTIN_MODELS: dict[str, Path] = {"anny-smpl24": ASSET_DIR / "anny_smpl24.npz"}

NUM_POSE_BASIS = (NUM_JOINTS - 1) * 9  # 207 pose-corrective blend shapes in SMPL


class BodyModelFileError(ValueError):
    """A body-model file is missing, unreadable, or holds an array of the wrong shape."""


@dataclass(frozen=True)
class SMPLArrays:
    """The arrays of an SMPL-format body model (numpy, float64/int64 as stored; V vertices, F faces).

    v_template: (V, 3) rest vertices in metres; shapedirs: (V, 3, S) shape blend shapes;
    posedirs: (V, 3, 207) pose-corrective blend shapes or None when the model has none;
    J_regressor: (24, V) joint regressor; weights: (V, 24) skinning weights;
    kintree_table: (2, 24) row 0 = parent of each joint; f: (F, 3) triangle vertex indices.
    extras: optional named arrays (extra regressors, dense parts, mirror map).
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray | None
    J_regressor: np.ndarray
    weights: np.ndarray
    kintree_table: np.ndarray
    f: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def parents(self) -> np.ndarray:
        """(24,) int64 parent of each joint, -1 for the root."""
        parents = self.kintree_table[0].astype(np.int64).copy()
        parents[0] = -1
        return parents


def _to_numpy(value: Any) -> Any:
    """Converts chumpy stubs and scipy sparse matrices to dense numpy arrays; other values pass through."""
    if isinstance(value, ChumpyStub):
        return value.value()
    if hasattr(value, "toarray") and hasattr(value, "nnz"):  # scipy.sparse
        return np.asarray(value.toarray())
    return value


def _read_pkl(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            raw = SafeUnpickler(handle, source=str(path), chumpy=ChumpyStub).load()
    except (UnsafePickleError, FileReadError) as err:  # both name the file
        raise BodyModelFileError(str(err)) from err
    except (
        pickle.UnpicklingError,
        EOFError,
        TypeError,
        AttributeError,
        ValueError,
        KeyError,
        IndexError,
        OverflowError,
        MemoryError,
    ) as err:
        raise BodyModelFileError(f"{path}: not a readable SMPL pickle ({err})") from err
    if not isinstance(raw, Mapping):
        raise BodyModelFileError(f"{path}: expected a dict of arrays, found {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = _to_numpy(value)
        except (TypeError, AttributeError, ValueError) as err:  # e.g. a sparse matrix missing its arrays
            raise BodyModelFileError(f"{path}: key '{key}': {err}") from err
    return out


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise BodyModelFileError(f"{path}: not a readable .npz file ({err})") from err


def _require(data: Mapping[str, Any], key: str, path: Path, shape: tuple[int | None, ...]) -> np.ndarray:
    """Returns data[key] as an array whose shape matches `shape` (None = any size), else raises."""
    if key not in data:
        raise BodyModelFileError(f"{path}: missing key '{key}'")
    try:
        array = np.asarray(data[key])
    except Exception as err:  # noqa: BLE001 - anything unconvertible is a bad file
        raise BodyModelFileError(f"{path}: key '{key}' is not an array ({err})") from err
    ok = array.ndim == len(shape) and all(
        want is None or want == got for want, got in zip(shape, array.shape)
    )
    if not ok:
        want = "x".join("?" if s is None else str(s) for s in shape)
        raise BodyModelFileError(f"{path}: key '{key}' has shape {array.shape}, expected {want}")
    if array.dtype.kind not in "biuf":
        raise BodyModelFileError(f"{path}: key '{key}' has non-numeric dtype {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise BodyModelFileError(f"{path}: key '{key}' contains NaN or inf")
    return array


def arrays_from_mapping(data: Mapping[str, Any], path: Path) -> SMPLArrays:
    """Validates a dict of raw arrays (from .pkl or .npz) and builds :class:`SMPLArrays`."""
    v_template = _require(data, "v_template", path, (None, 3)).astype(np.float64)
    num_vertices = v_template.shape[0]
    shapedirs = _require(data, "shapedirs", path, (num_vertices, 3, None)).astype(np.float64)
    posedirs = None
    if "posedirs" in data:
        posedirs = _require(data, "posedirs", path, (num_vertices, 3, NUM_POSE_BASIS)).astype(np.float64)
    J_regressor = _require(data, "J_regressor", path, (NUM_JOINTS, num_vertices)).astype(np.float64)
    weights = _require(data, "weights", path, (num_vertices, NUM_JOINTS)).astype(np.float64)
    kintree = _require(data, "kintree_table", path, (2, NUM_JOINTS)).astype(np.int64)
    faces = _require(data, "f", path, (None, 3)).astype(np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        raise BodyModelFileError(f"{path}: key 'f' indexes vertices outside 0..{num_vertices - 1}")
    parents = kintree[0].copy()
    parents[0] = -1
    if tuple(parents.tolist()) != SMPL_PARENTS:
        raise BodyModelFileError(
            f"{path}: key 'kintree_table' is not SMPL's 24-joint tree: {parents.tolist()}"
        )
    extras = {
        key: np.asarray(value)
        for key, value in data.items()
        if key.startswith(("regressor_", "parts_", "vertex_mirror", "meta_"))
    }
    return SMPLArrays(
        v_template, shapedirs, posedirs, J_regressor, weights, kintree, faces, extras, str(path)
    )


def read_smpl_file(path: str | Path) -> SMPLArrays:
    """Reads an SMPL-format model from a .pkl (official, chumpy inside) or .npz file.

    Raises BodyModelFileError naming the file and key when anything is missing or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise BodyModelFileError(f"{path}: body-model file not found")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        data = _read_pkl(path)
    elif suffix == ".npz":
        data = _read_npz(path)
    else:
        raise BodyModelFileError(f"{path}: unknown body-model format '{suffix}' (expected .pkl or .npz)")
    return arrays_from_mapping(data, path)


def resolve_model_path(name_or_path: str | Path, gender: str = "neutral") -> Path:
    """Maps a built-in model name, an SMPL folder (with gender) or a file path onto a file path.

    A folder is searched for the usual SMPL file names of the given gender
    (SMPL_NEUTRAL.pkl, basicModel_neutral_lbs_10_207_0_v1.0.0.pkl, basicmodel_m_lbs_10_207_0_v1.0.0.pkl, ...).
    """
    if str(name_or_path) in BUILTIN_MODELS:
        return BUILTIN_MODELS[str(name_or_path)]
    path = Path(name_or_path)
    if not path.is_dir():
        return path
    gender = gender.lower()
    tags = {"neutral": ("neutral",), "male": ("male", "_m_"), "female": ("female", "_f_")}
    if gender not in tags:
        raise BodyModelFileError(f"{path}: unknown gender '{gender}' (neutral, male or female)")
    candidates = sorted(p for p in path.iterdir() if p.suffix.lower() in (".pkl", ".npz"))
    for candidate in candidates:
        lower = candidate.name.lower()
        if gender == "male" and "female" in lower:
            continue
        if any(tag in lower for tag in tags[gender]):
            return candidate
    raise BodyModelFileError(
        f"{path}: no {gender} SMPL model file found among {[c.name for c in candidates]}"
    )


def write_npz_deterministic(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Writes arrays to a compressed .npz whose bytes depend only on the arrays (fixed zip timestamps).

    numpy's savez stamps each member with the current time, so two exports of the same data would differ;
    here members are sorted by name and dated 1980-01-01. Written to a temporary name, then renamed.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=9)
    tmp.replace(path)
