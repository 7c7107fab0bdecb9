"""Keypoint regressors of the field's files, checked for what their rows mean.

Real SMPL ships only its 24 joints. The datasets' keypoints (SPIN-24: LSP, MPII, H36M and face points) are
built the way SPIN builds them: SMPL joints for the limbs, five face vertices, and the rows of
``J_regressor_extra.npy`` for the rest. Two files of that name circulate:

* SPIN's, (9, 6890): right hip, left hip, neck (LSP), head top (LSP), pelvis (MPII), thorax (MPII),
  spine (H36M), jaw (H36M), head (H36M);
* GraphCMR's, (14, 6890): nose, right eye, left eye, right ear, left ear, then the same nine.

Human3.6M's joints come from ``J_regressor_h36m.npy`` (17, 6890), rows as constants.H36M17_NAMES.

A file is told apart by its shape and then checked on the rest pose (SMPL axes: +x is the body's left,
+y up): rows on the side and at the height their names say, weights summing to ~1. A file that fails is
refused with the file and the row named, so a wrong file can never quietly mislabel every keypoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.body.constants import H36M17_NAMES, SPIN24_NAMES
from pipeline.body.smpl_io import BodyModelFileError

# The nine rows common to both extra-regressor files, in file order.
EXTRA9_NAMES: tuple[str, ...] = (
    "right_hip", "left_hip", "neck_lsp", "head_top_lsp", "pelvis_mpii", "thorax_mpii", "spine_h36m",
    "jaw_h36m", "head_h36m",
)  # fmt: skip
FACE_NAMES: tuple[str, ...] = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
GRAPHCMR_EXTRA14_NAMES: tuple[str, ...] = FACE_NAMES + EXTRA9_NAMES

# SMPL vertex of each face point (smplx's vertex_ids for SMPL topology, as SPIN selects them).
SMPL_FACE_VERTICES: dict[str, int] = {
    "nose": 332, "right_eye": 6260, "left_eye": 2800, "right_ear": 4071, "left_ear": 583,
}  # fmt: skip
SMPL_NUM_VERTICES = 6890

# SPIN-24 keypoints that are plain SMPL joints (SPIN's JOINT_MAP): keypoint name -> SMPL joint index.
SPIN24_FROM_SMPL_JOINTS: dict[str, int] = {
    "right_ankle": 8, "right_knee": 5, "left_knee": 4, "left_ankle": 7, "right_wrist": 21, "right_elbow": 19,
    "right_shoulder": 17, "left_shoulder": 16, "left_elbow": 18, "left_wrist": 20,
}  # fmt: skip

_ROW_SUM_TOLERANCE = 0.25  # the field's files sum to 1; a wrong file is far off


def read_regressor(path: str | Path, what: str) -> np.ndarray:
    """A (K, V) regressor from a .npy file (no pickles), as float64; BodyModelFileError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise BodyModelFileError(f"{path}: {what} not found")
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise BodyModelFileError(f"{path}: cannot read the {what} ({err})") from err
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise BodyModelFileError(f"{path}: the {what} has shape {matrix.shape}, expected (K, V)")
    return matrix


def _check_rows(
    names: tuple[str, ...], points: np.ndarray, matrix: np.ndarray, source: str, what: str
) -> None:
    """Checks rows named `names` (points: (K, 3) on the rest pose) for sides, heights and weight sums."""
    where = {name: i for i, name in enumerate(names)}

    def fail(row: int, why: str) -> None:
        raise BodyModelFileError(f"{source}: row {row} ({names[row]}) of the {what} {why}")

    sums = matrix.sum(axis=1)
    for row, total in enumerate(sums):
        if abs(total - 1.0) > _ROW_SUM_TOLERANCE:
            fail(row, f"has weights summing to {total:.3f}, not ~1: not a keypoint regressor")
    half_width = 0.005  # metres: a side's point lies at least this far off the midline (eyes: ~3 cm)
    for row, name in enumerate(names):
        side = name.split("_")[0]
        if side == "left" and points[row, 0] < half_width:
            fail(row, f"lies at x = {points[row, 0]:+.3f} m, not on the body's left (+x)")
        if side == "right" and points[row, 0] > -half_width:
            fail(row, f"lies at x = {points[row, 0]:+.3f} m, not on the body's right (-x)")
    heights = [  # (lower, upper) pairs that must hold on any standing body
        ("pelvis_mpii", "thorax_mpii"), ("spine_h36m", "thorax_mpii"), ("thorax_mpii", "head_top_lsp"),
        ("neck_lsp", "head_top_lsp"), ("right_hip", "neck_lsp"), ("left_hip", "neck_lsp"),
        ("jaw_h36m", "head_top_lsp"), ("jaw_h36m", "head_h36m"), ("neck_lsp", "nose"), ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"), ("left_ankle", "left_knee"), ("left_knee", "left_hip"),
        ("pelvis", "spine"), ("spine", "thorax"), ("thorax", "head"),
    ]  # fmt: skip
    for lower, upper in heights:
        if lower in where and upper in where and points[where[lower], 1] >= points[where[upper], 1]:
            fail(where[lower], f"lies above {upper} (row {where[upper]}) on the rest pose")


def check_extra_rows(matrix: np.ndarray, rest_vertices: np.ndarray, source: str) -> tuple[str, ...]:
    """Names of the rows of a J_regressor_extra file (SPIN's 9 or GraphCMR's 14 rows), after checking
    what they mean on the rest pose. matrix: (K, V); rest_vertices: (V, 3) metres, SMPL axes."""
    num_vertices = rest_vertices.shape[0]
    if matrix.shape[1] != num_vertices:
        raise BodyModelFileError(
            f"{source}: the extra regressor has {matrix.shape[1]} columns but the body has {num_vertices} "
            "vertices: it belongs to another body model"
        )
    names = {9: EXTRA9_NAMES, 14: GRAPHCMR_EXTRA14_NAMES}.get(matrix.shape[0])
    if names is None:
        raise BodyModelFileError(
            f"{source}: an extra regressor of {matrix.shape[0]} rows is neither SPIN's J_regressor_extra.npy "
            "(9 rows) nor GraphCMR's (14 rows)"
        )
    _check_rows(names, matrix @ rest_vertices, matrix, source, "extra regressor")
    return names


def spin24_regressor(
    joint_regressor: np.ndarray, extra: np.ndarray, rest_vertices: np.ndarray, source: str
) -> np.ndarray:
    """(24, V) SPIN-24 keypoint regressor of an SMPL-topology body, as SPIN builds its keypoints.

    joint_regressor: (24, V) the body's J_regressor; extra: (9 | 14, V) a J_regressor_extra file's rows;
    rest_vertices: (V, 3). Face points are single vertices (SMPL_FACE_VERTICES), which need the SMPL
    topology: another body is refused."""
    names = check_extra_rows(extra, rest_vertices, source)
    num_vertices = rest_vertices.shape[0]
    if num_vertices != SMPL_NUM_VERTICES:
        raise BodyModelFileError(
            f"{source}: SPIN-24 face keypoints are SMPL vertices; a body of {num_vertices} vertices is not "
            f"SMPL topology ({SMPL_NUM_VERTICES})"
        )
    rows: dict[str, np.ndarray] = {name: extra[i] for i, name in enumerate(names)}
    for name, joint in SPIN24_FROM_SMPL_JOINTS.items():
        rows[name] = joint_regressor[joint]
    for name, vertex in SMPL_FACE_VERTICES.items():
        if name not in rows:  # GraphCMR's file has its own face rows; SPIN takes single vertices
            one_hot = np.zeros(num_vertices)
            one_hot[vertex] = 1.0
            rows[name] = one_hot
    return np.stack([rows[name] for name in SPIN24_NAMES])


def check_h36m17(matrix: np.ndarray, rest_vertices: np.ndarray, source: str) -> None:
    """Checks a (17, V) J_regressor_h36m-style regressor: shape, weights and the field's row order (rows 1-3
    on the left leg, 11-13 on the left arm). Raises BodyModelFileError naming the file and row."""
    if matrix.shape != (17, rest_vertices.shape[0]):
        raise BodyModelFileError(
            f"{source}: H36M regressor has shape {matrix.shape}, expected (17, {rest_vertices.shape[0]})"
        )
    _check_rows(H36M17_NAMES, matrix @ rest_vertices, matrix, source, "H36M regressor")
