"""An SMPL-topology stand-in body, written in the real files' formats, for tests of the real-SMPL path.

The official SMPL files are licence-gated, so the tests build a body with SMPL's numbers where the code
depends on them: 6,890 vertices, SMPL's 24-joint tree, 10 shape and 207 pose blend shapes, and the five face
vertices SPIN reads (nose 332, eyes 6260 / 2800, ears 4071 / 583) placed where their names say. Its shape is
a T-pose of tubes along the bones of the built-in open body's skeleton plus a head, exactly left/right
symmetric. It is written as:

* SMPL .pkl files (protocol 2, `chumpy.ch.Ch` objects, a scipy.sparse J_regressor, the official file names
  of the three genders);
* DensePose's UV_Processed.mat (All_vertices, All_FaceIndices, All_Faces, All_U_norm, All_V_norm, 1-based);
* J_regressor_h36m.npy (17 x 6890, Fortran order, rows 1-3 on the left leg as the field's file);
* J_regressor_extra.npy (SPIN's 9 x 6890, or GraphCMR's 14 x 6890).
"""

from __future__ import annotations

import pickle
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse
from scipy.io import savemat

from pipeline.body.constants import SMPL_PARENTS

NUM_VERTICES = 6890
RING = 10  # vertices per ring (even: the rings are mirror-symmetric)
RINGS_PER_BONE = 28
HEAD_RINGS = (NUM_VERTICES - RING * RINGS_PER_BONE * 23) // RING  # 45: 6890 = 10 * (23 * 28 + 45)
FACE_VERTICES = {"nose": 332, "right_eye": 6260, "left_eye": 2800, "right_ear": 4071, "left_ear": 583}
SMPL_FILE_NAMES = {
    "neutral": "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl",
    "male": "basicmodel_m_lbs_10_207_0_v1.0.0.pkl",
    "female": "basicModel_f_lbs_10_207_0_v1.0.0.pkl",
}
_RADIUS = {0: 0.11, 3: 0.12, 6: 0.12, 9: 0.12, 12: 0.05, 13: 0.05, 14: 0.05}  # by bone's parent joint


@dataclass(frozen=True)
class StandIn:
    """The stand-in body: v_template (6890, 3) m; faces (F, 3); weights (6890, 24); J_regressor (24, 6890);
    shapedirs (6890, 3, 10); posedirs (6890, 3, 207); vertex_part (6890,) DensePose part 1..24 of each vertex;
    joints (24, 3) rest joints."""

    v_template: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    J_regressor: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    vertex_part: np.ndarray
    joints: np.ndarray


def _basis(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors across `direction`, built so that mirroring x maps the basis of a bone onto (minus
    the first of) the basis of its mirror image: the rings of mirrored bones are mirror images."""
    axis = np.array([0.0, 0.0, 1.0]) if abs(direction[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    first = np.cross(direction, axis)
    first /= np.linalg.norm(first)
    return first, np.cross(direction, first)


def _part_of(joint: int, x: float) -> int:
    """A DensePose part (1..24) for vertices skinned to `joint` (front/back split by nothing: one side)."""
    left = x > 0
    parts = {  # joint -> (left part, right part) in DensePose numbering (constants.DENSEPOSE_PART_NAMES)
        1: (10, 9), 2: (10, 9), 4: (14, 13), 5: (14, 13), 7: (5, 6), 8: (5, 6), 10: (5, 6), 11: (5, 6),
        16: (17, 18), 17: (17, 18), 18: (21, 22), 19: (21, 22), 20: (4, 3), 21: (4, 3), 15: (24, 23),
        12: (24, 23), 13: (2, 2), 14: (2, 2),
    }  # fmt: skip
    if joint in parts:
        return parts[joint][0 if left else 1]
    return 2  # torso front


def build_standin(joints: np.ndarray | None = None) -> StandIn:
    """The stand-in body on the given rest joints (24, 3) (default: the open body's, made symmetric)."""
    if joints is None:
        from pipeline.body import load_body_model

        body = load_body_model("anny-smpl24")
        rest = body.J_regressor.double().numpy() @ body.rest_vertices()
        mirror = rest * np.array([-1.0, 1.0, 1.0])
        flip = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22)
        joints = (rest + mirror[list(flip)]) / 2.0  # exactly symmetric
    vertices, faces, owner, regressor_rows = [], [], [], {}
    angles = 2.0 * np.pi * np.arange(RING) / RING
    for child in range(1, 24):
        parent = SMPL_PARENTS[child]
        start, end = joints[parent], joints[child]
        direction = (end - start) / np.linalg.norm(end - start)
        first, second = _basis(direction)
        radius = _RADIUS.get(parent, 0.045 if parent < 12 else 0.035)
        base = len(vertices)
        for ring in range(RINGS_PER_BONE):
            centre = start + (end - start) * ring / (RINGS_PER_BONE - 1)
            for angle in angles:
                vertices.append(centre + radius * (np.cos(angle) * first + np.sin(angle) * second))
                owner.append(parent)
        for ring in range(RINGS_PER_BONE - 1):
            for k in range(RING):
                a, b = base + ring * RING + k, base + ring * RING + (k + 1) % RING
                faces += [(a, b, b + RING), (a, b + RING, a + RING)]
        regressor_rows.setdefault(parent, list(range(base, base + RING)))  # first ring: centred on parent
        leaf_ring = base + (RINGS_PER_BONE - 1) * RING
        regressor_rows.setdefault(child, list(range(leaf_ring, leaf_ring + RING)))  # leaves: last ring
    head = joints[15]
    base = len(vertices)
    for ring in range(HEAD_RINGS):  # latitude rings of a sphere around the head joint, no poles
        polar = np.pi * (ring + 0.5) / HEAD_RINGS
        for angle in angles:
            offset = np.array([np.sin(polar) * np.cos(angle), np.cos(polar), np.sin(polar) * np.sin(angle)])
            vertices.append(head + np.array([0.0, 0.08, 0.0]) + 0.1 * offset)
            owner.append(15)
    for ring in range(HEAD_RINGS - 1):
        for k in range(RING):
            a, b = base + ring * RING + k, base + ring * RING + (k + 1) % RING
            faces += [(a, b + RING, b), (a, a + RING, b + RING)]
    vertices = np.asarray(vertices)
    faces = np.asarray(faces, dtype=np.int64)
    owner = np.asarray(owner)
    assert vertices.shape == (NUM_VERTICES, 3), vertices.shape

    # Put the face points SPIN reads on the head at their names' places (+z is the front, +x the left).
    head_ids = np.arange(base, NUM_VERTICES)
    centre = head + np.array([0.0, 0.08, 0.0])
    targets = {
        "nose": centre + [0.0, -0.02, 0.1], "right_eye": centre + [-0.035, 0.02, 0.09],
        "left_eye": centre + [0.035, 0.02, 0.09], "right_ear": centre + [-0.1, 0.0, 0.0],
        "left_ear": centre + [0.1, 0.0, 0.0],
    }  # fmt: skip
    order = np.arange(NUM_VERTICES)
    chosen = set()
    for name, target in targets.items():
        nearest = head_ids[np.argmin(np.linalg.norm(vertices[head_ids] - target, axis=1))]
        assert nearest not in chosen, name
        chosen.add(nearest)
        wanted = FACE_VERTICES[name]
        i, j = np.where(order == nearest)[0][0], np.where(order == wanted)[0][0]
        order[i], order[j] = order[j], order[i]
    # order[new] = old: vertex `new` of the file is vertex `old` of the construction
    inverse = np.empty_like(order)
    inverse[order] = np.arange(NUM_VERTICES)
    vertices, owner, faces = vertices[order], owner[order], inverse[faces]
    regressor_rows = {j: inverse[rows] for j, rows in regressor_rows.items()}

    J_regressor = np.zeros((24, NUM_VERTICES))
    for joint, rows in regressor_rows.items():
        J_regressor[joint, rows] = 1.0 / len(rows)
    weights = np.zeros((NUM_VERTICES, 24))
    weights[np.arange(NUM_VERTICES), owner] = 1.0
    shapedirs = np.zeros((NUM_VERTICES, 3, 10))
    shapedirs[:, :, 0] = 0.05 * vertices  # beta 0: overall size
    shapedirs[:, 0, 1] = 0.05 * vertices[:, 0]  # beta 1: width
    shapedirs[:, 1, 2] = 0.03 * vertices[:, 1]  # beta 2: height
    posedirs = np.zeros((NUM_VERTICES, 3, 207))
    posedirs[:, 1, :] = 1e-4 * np.cos(np.arange(207))[None, :]  # small and non-zero, as in SMPL
    vertex_part = np.array([_part_of(int(j), float(x)) for j, x in zip(owner, vertices[:, 0], strict=True)])
    joints_out = J_regressor @ vertices
    return StandIn(vertices, faces, weights, J_regressor, shapedirs, posedirs, vertex_part, joints_out)


def write_chumpy_pickle(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes an SMPL .pkl as the official files are: protocol 2, arrays as `chumpy.ch.Ch` objects, a
    scipy.sparse J_regressor. A throwaway `chumpy.ch` module stands in while pickling and is removed before
    loading, like a user machine without chumpy."""
    module = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x: np.ndarray) -> None:
            self.x = x

        def __getstate__(self) -> dict:
            return {"x": self.x, "_dirty_vars": set()}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = Ch
    package = types.ModuleType("chumpy")
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = package, module
    try:
        data = {
            key: Ch(value) for key, value in arrays.items() if key not in ("J_regressor", "posedirs", "f")
        }
        data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
        data["posedirs"] = arrays["posedirs"]
        data["f"] = arrays["f"]
        data["bs_style"] = "lbs"
        with open(path, "wb") as handle:
            pickle.dump(data, handle, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def smpl_arrays(body: StandIn, size: float = 1.0) -> dict[str, np.ndarray]:
    """The body as an SMPL file's arrays (`size` scales the template: the genders differ by it)."""
    kintree = np.array([[4294967295, *SMPL_PARENTS[1:]], list(range(24))], dtype=np.int64)
    return {
        "v_template": body.v_template * size, "shapedirs": body.shapedirs, "posedirs": body.posedirs,
        "J_regressor": body.J_regressor, "weights": body.weights, "kintree_table": kintree,
        "f": body.faces.astype(np.uint32), "J": body.joints * size,
    }  # fmt: skip


def write_smpl_folder(folder: Path, body: StandIn) -> Path:
    """The three gendered SMPL .pkl files under their official names (male 4 % taller, female 4 % smaller)."""
    folder.mkdir(parents=True, exist_ok=True)
    for gender, size in (("neutral", 1.0), ("male", 1.04), ("female", 0.96)):
        write_chumpy_pickle(folder / SMPL_FILE_NAMES[gender], smpl_arrays(body, size))
    return folder


def write_uv_processed(path: Path, body: StandIn) -> Path:
    """DensePose's UV_Processed.mat for the body: every face a render triangle of its first vertex's part,
    each render vertex a copy of a body vertex with a (U, V) from its position; 1-based, as DensePose."""
    faces = body.faces
    face_part = body.vertex_part[faces[:, 0]]
    render_to_body = faces.reshape(-1)  # one render vertex per face corner (seams split everywhere)
    position = body.v_template[render_to_body]
    u = (position[:, 0] - position[:, 0].min()) / np.ptp(position[:, 0])
    v = (position[:, 1] - position[:, 1].min()) / np.ptp(position[:, 1])
    savemat(
        path,
        {
            "All_vertices": (render_to_body + 1).astype(np.float64)[None, :],
            "All_FaceIndices": face_part.astype(np.float64)[:, None],
            "All_Faces": (np.arange(len(render_to_body)).reshape(-1, 3) + 1).astype(np.float64),
            "All_U_norm": u[:, None],
            "All_V_norm": v[:, None],
        },
    )
    return path


def _rows(body: StandIn, recipe: list[tuple]) -> np.ndarray:
    """Regressor rows from recipes: ("joint", j) -> the SMPL joint's row; ("mix", a, b, ...) -> the mean of
    the listed joints' rows; ("vertex", v) -> one vertex."""
    rows = []
    for item in recipe:
        if item[0] == "joint":
            rows.append(body.J_regressor[item[1]])
        elif item[0] == "mix":
            rows.append(np.mean([body.J_regressor[j] for j in item[1:]], axis=0))
        else:
            row = np.zeros(NUM_VERTICES)
            row[item[1]] = 1.0
            rows.append(row)
    return np.stack(rows)


H36M_RECIPE = [  # the field's row order: pelvis, LEFT leg (hip, knee, ankle), right leg, spine, thorax, ...
    ("joint", 0), ("joint", 1), ("joint", 4), ("joint", 7), ("joint", 2), ("joint", 5), ("joint", 8),
    ("mix", 3, 6), ("mix", 9, 12), ("mix", 12, 15), ("joint", 15), ("joint", 16), ("joint", 18),
    ("joint", 20), ("joint", 17), ("joint", 19), ("joint", 21),
]  # fmt: skip
SPIN_EXTRA9_RECIPE = [  # right hip, left hip, neck, head top, pelvis, thorax, spine, jaw, head
    ("mix", 2, 2, 2, 0), ("mix", 1, 1, 1, 0), ("joint", 12), ("vertex", None), ("joint", 0),
    ("mix", 9, 12), ("mix", 3, 6), ("mix", 12, 15), ("joint", 15),
]  # fmt: skip
FACE_RECIPE = [
    ("vertex", FACE_VERTICES[name]) for name in ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
]


def h36m_regressor(body: StandIn) -> np.ndarray:
    """(17, 6890) in J_regressor_h36m.npy's row order, Fortran-ordered as the field's file."""
    return np.asfortranarray(_rows(body, H36M_RECIPE))


def extra_regressor(body: StandIn, graphcmr: bool = False) -> np.ndarray:
    """SPIN's (9, 6890) J_regressor_extra.npy, or GraphCMR's (14, 6890) one (five face rows first)."""
    top = int(np.argmax(body.v_template[:, 1]))  # head top: the highest vertex
    recipe = [("vertex", top) if item == ("vertex", None) else item for item in SPIN_EXTRA9_RECIPE]
    return _rows(body, (FACE_RECIPE if graphcmr else []) + recipe)


def write_regressors(folder: Path, body: StandIn) -> dict[str, Path]:
    """J_regressor_h36m.npy and J_regressor_extra.npy (SPIN's) in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"h36m": folder / "J_regressor_h36m.npy", "extra": folder / "J_regressor_extra.npy"}
    np.save(paths["h36m"], h36m_regressor(body))
    np.save(paths["extra"], extra_regressor(body))
    return paths
