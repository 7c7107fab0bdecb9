"""Dense body parts: the DensePose-style (part, U, V) surface chart of a body model.

Rendering needs a mesh whose vertices each carry one part and one (U, V); a body-model vertex on a seam
between parts is therefore split into several *render vertices*. The table is the same for both sources:

* real SMPL: DensePose's ``UV_Processed.mat`` (All_vertices, All_FaceIndices, All_Faces, All_U_norm,
  All_V_norm; every index 1-based);
* the built-in open model: the ``parts_*`` arrays of its asset, made by ``python -m stages.build_body_model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.body.constants import NUM_PARTS
from pipeline.body.smpl_io import BUILTIN_MODELS, BodyModelFileError, read_smpl_file


@dataclass(frozen=True)
class DenseParts:
    """render_to_body: (R,) int64 body-model vertex of each render vertex;
    part: (R,) int64 part 1..24 of each render vertex; uv: (R, 2) float32 in [0, 1];
    faces: (Fr, 3) int64 over render vertices; face_part: (Fr,) int64 part 1..24 of each face."""

    render_to_body: np.ndarray
    part: np.ndarray
    uv: np.ndarray
    faces: np.ndarray
    face_part: np.ndarray
    source: str = ""

    @property
    def num_render_vertices(self) -> int:
        return int(self.render_to_body.shape[0])

    def validate(self, num_body_vertices: int | None = None) -> DenseParts:
        """Checks shapes and ranges; raises BodyModelFileError naming the source and the field."""
        where = self.source or "dense parts"
        num = self.num_render_vertices
        checks = [
            ("render_to_body", self.render_to_body.shape == (num,)),
            ("part", self.part.shape == (num,) and bool(np.all((self.part >= 1) & (self.part <= NUM_PARTS)))),
            ("uv", self.uv.shape == (num, 2) and bool(np.all((self.uv >= 0) & (self.uv <= 1)))),
            ("faces", self.faces.ndim == 2 and self.faces.shape[1] == 3 and bool(np.all(self.faces < num))),
            ("face_part", self.face_part.shape == (self.faces.shape[0],)),
        ]
        if num_body_vertices is not None:
            checks.append(("render_to_body", bool(np.all(self.render_to_body < num_body_vertices))))
        for name, ok in checks:
            if not ok:
                raise BodyModelFileError(
                    f"{where}: field '{name}' has the wrong shape or values out of range"
                )
        if not np.array_equal(self.part[self.faces[:, 0]], self.face_part):
            raise BodyModelFileError(f"{where}: field 'face_part' disagrees with the parts of its vertices")
        return self


def dense_parts_from_arrays(arrays: dict[str, np.ndarray], source: str) -> DenseParts:
    """Builds DenseParts from the `parts_*` arrays stored in an exported body asset."""
    try:
        faces = np.asarray(arrays["parts_faces"], dtype=np.int64)
        part = np.asarray(arrays["parts_part"], dtype=np.int64)
        parts = DenseParts(
            render_to_body=np.asarray(arrays["parts_render_to_body"], dtype=np.int64),
            part=part,
            uv=np.asarray(arrays["parts_uv"], dtype=np.float32),
            faces=faces,
            face_part=part[faces[:, 0]] if faces.size else np.zeros(0, np.int64),
            source=source,
        )
    except KeyError as err:
        raise BodyModelFileError(f"{source}: missing key '{err.args[0]}'") from err
    return parts.validate()


def read_uv_processed(path: str | Path) -> DenseParts:
    """Reads DensePose's UV_Processed.mat (SMPL's dense chart; 1-based indices) into DenseParts."""
    from scipy.io import loadmat  # scipy reads MATLAB v5 files; only needed for real SMPL users.

    path = Path(path)
    if not path.is_file():
        raise BodyModelFileError(f"{path}: UV_Processed.mat not found")
    try:
        mat = loadmat(path)
    except Exception as err:  # noqa: BLE001 - scipy raises several types for bad files
        raise BodyModelFileError(f"{path}: not a readable MATLAB file ({err})") from err

    def field(key: str) -> np.ndarray:
        if key not in mat:
            raise BodyModelFileError(f"{path}: missing key '{key}'")
        return np.asarray(mat[key])

    vertices = field("All_vertices").reshape(-1).astype(np.int64) - 1
    face_part = field("All_FaceIndices").reshape(-1).astype(np.int64)
    faces = field("All_Faces").astype(np.int64) - 1
    u = field("All_U_norm").reshape(-1).astype(np.float32)
    v = field("All_V_norm").reshape(-1).astype(np.float32)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] != face_part.shape[0]:
        raise BodyModelFileError(
            f"{path}: key 'All_Faces' has shape {faces.shape}, expected (F, 3) matching parts"
        )
    if not (len(vertices) == len(u) == len(v)):
        raise BodyModelFileError(f"{path}: keys 'All_vertices', 'All_U_norm', 'All_V_norm' differ in length")
    part = np.zeros(len(vertices), dtype=np.int64)
    part[faces.reshape(-1)] = np.repeat(face_part, 3)
    return DenseParts(vertices, part, np.stack([u, v], axis=1), faces, face_part, str(path)).validate()


def load_dense_parts(name_or_path: str | Path = "anny-smpl24") -> DenseParts:
    """Dense parts of the built-in open model (by name) or of real SMPL (path to UV_Processed.mat)."""
    if str(name_or_path) in BUILTIN_MODELS:
        arrays = read_smpl_file(BUILTIN_MODELS[str(name_or_path)])
        return dense_parts_from_arrays(arrays.extras, str(name_or_path)).validate(arrays.num_vertices)
    path = Path(name_or_path)
    if path.suffix.lower() == ".mat":
        return read_uv_processed(path)
    return dense_parts_from_arrays(read_smpl_file(path).extras, str(path))


MIN_COVERAGE = 0.99  # share of a body's vertices a dense-parts table must chart


def check_parts_fit_body(parts: DenseParts, num_body_vertices: int, body_source: str) -> DenseParts:
    """Checks that `parts` was made for a body of `num_body_vertices` vertices: every index in range and
    (nearly) every body vertex charted. Raises BodyModelFileError naming both files."""
    used = np.unique(parts.render_to_body)
    where = f"dense parts {parts.source or '?'} and body model {body_source}"
    if used.size and (used[0] < 0 or used[-1] >= num_body_vertices):
        raise BodyModelFileError(
            f"{where} do not fit: the parts index body vertex {int(used[-1])} but the body has "
            f"{num_body_vertices} vertices"
        )
    coverage = used.size / max(num_body_vertices, 1)
    if coverage < MIN_COVERAGE:
        raise BodyModelFileError(
            f"{where} do not fit: the parts chart {used.size} of the body's {num_body_vertices} vertices "
            f"({100 * coverage:.1f} %); they were made for another body"
        )
    return parts
