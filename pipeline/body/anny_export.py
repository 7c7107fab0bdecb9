"""Export of the open `anny` body model into an SMPL-format asset ("anny-smpl24").

Steps (each a small function, run by `python -m stages.build_body_model`):

1. sample adult phenotypes, pose nothing, read Anny's rest mesh and bone heads, convert to SMPL axes;
2. merge Anny's game_engine skinning weights onto SMPL's 24 joints (fingers -> the hand joint);
3. re-bake each rest mesh from Anny's A-pose into a T-pose (arm bones aligned with +-x) with the same LBS
   the runtime model uses;
4. PCA over the T-posed meshes -> template + 10 shape blend shapes (unit-variance betas);
5. fit a sparse joint regressor (each joint a sum-to-one mix of the vertices near it);
6. segment the surface into DensePose's 24 parts with a (U, V) chart per part (pipeline.body.anny_parts);
7. keypoint regressors in SPIN's 24 and H36M's 17 joint orders; the vertex mirror map.

Everything is float64 and single-threaded so that re-running the export gives the same bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import torch
from smplx.lbs import batch_rigid_transform

from pipeline.body.anny_parts import segment_dense_parts
from pipeline.body.constants import NUM_BETAS, NUM_JOINTS, SMPL_PARENTS
from pipeline.body.model import skin_vertices
from pipeline.body.symmetry import vertex_mirror_map

# Anny game_engine bone -> SMPL joint. Finger bones (index/middle/ring/pinky/thumb) merge into the hand joint.
ANNY_BONE_TO_SMPL: dict[str, int] = {
    "Root": 0, "pelvis": 0, "thigh_l": 1, "thigh_r": 2, "spine_01": 3, "calf_l": 4, "calf_r": 5,
    "spine_02": 6, "foot_l": 7, "foot_r": 8, "spine_03": 9, "ball_l": 10, "ball_r": 11, "neck_01": 12,
    "clavicle_l": 13, "clavicle_r": 14, "head": 15, "upperarm_l": 16, "upperarm_r": 17, "lowerarm_l": 18,
    "lowerarm_r": 19, "hand_l": 20, "hand_r": 21,
}  # fmt: skip
FINGER_PREFIXES = ("index", "middle", "ring", "pinky", "thumb")
HAND_JOINT = {"l": 22, "r": 23}
# Anny (x, y, z) with z up and the body facing -y -> SMPL (x, z, -y): y up, facing +z, x = body's left.
ANNY_TO_SMPL_AXES = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
# Faces of these Anny segmentation labels are inside the head; they are dropped from the open model.
DROPPED_LABELS = ("eye_back.L", "eye_back.R", "eye_cavity.L", "eye_cavity.R", "mouth_cavity", "tongue")
# Bones whose chain is straightened into the T-pose: SMPL joint -> its child along the arm.
ARM_CHAINS = {"left": (16, 18, 20, 22), "right": (17, 19, 21, 23)}


@dataclass(frozen=True)
class ExportConfig:
    """Knobs of the export. Defaults give the committed asset."""

    num_samples: int = 1000
    seed: int = 0
    age_range: tuple[float, float] = (0.45, 0.85)  # Anny's age phenotype; ~ 20 to 70 years
    batch_size: int = 100
    regressor_radius: float = 0.15  # metres around a joint whose vertices may enter its regressor row


def anny_bone_to_smpl_joint(label: str) -> int:
    """Maps an Anny game_engine bone label onto its SMPL joint index (fingers -> the hand joint)."""
    if label in ANNY_BONE_TO_SMPL:
        return ANNY_BONE_TO_SMPL[label]
    if label.startswith(FINGER_PREFIXES):
        return HAND_JOINT[label.rsplit("_", 1)[-1]]
    raise KeyError(f"Anny bone '{label}' has no SMPL joint")


def sample_adult_phenotypes(labels: list[str], config: ExportConfig) -> dict[str, torch.Tensor]:
    """(N,) float64 per phenotype label: uniform in [0, 1], age restricted to adults. Deterministic."""
    generator = torch.Generator().manual_seed(config.seed)
    values = {
        label: torch.rand(config.num_samples, generator=generator, dtype=torch.float64) for label in labels
    }
    low, high = config.age_range
    values["age"] = low + (high - low) * values["age"]
    return values


def merged_skinning_weights(model, bone_labels: list[str]) -> np.ndarray:
    """Anny's sparse per-vertex bone weights summed onto SMPL joints -> (V, 24), rows summing to 1."""
    bone_to_joint = np.array([anny_bone_to_smpl_joint(label) for label in bone_labels])
    indices = model.vertex_bone_indices.cpu().numpy()
    weights = model.vertex_bone_weights.cpu().numpy().astype(np.float64)
    merged = np.zeros((indices.shape[0], NUM_JOINTS))
    np.add.at(
        merged,
        (np.arange(indices.shape[0])[:, None].repeat(indices.shape[1], 1), bone_to_joint[indices]),
        weights,
    )
    return merged / merged.sum(axis=1, keepdims=True)


def smpl_joints_from_bone_heads(heads: np.ndarray, bone_labels: list[str]) -> np.ndarray:
    """(N, bones, 3) Anny bone heads (SMPL axes) -> (N, 24, 3) SMPL joint positions.

    Each SMPL joint sits at the head of its bone; the hand joint at the mean knuckle (the heads of the
    index/middle/ring/pinky first phalanges).
    """
    joints = np.zeros((heads.shape[0], NUM_JOINTS, 3))
    for label, joint in ANNY_BONE_TO_SMPL.items():
        if label != "Root":
            joints[:, joint] = heads[:, bone_labels.index(label)]
    for side, joint in HAND_JOINT.items():
        knuckles = [
            bone_labels.index(f"{finger}_01_{side}") for finger in ("index", "middle", "ring", "pinky")
        ]
        joints[:, joint] = heads[:, knuckles].mean(axis=1)
    return joints


def rotation_between(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N, 3), (N, 3) directions -> (N, 3, 3) smallest rotations taking source onto target."""
    a = source / np.linalg.norm(source, axis=-1, keepdims=True)
    b = target / np.linalg.norm(target, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.sum(a * b, axis=-1)
    axis = axis / np.maximum(sin, 1e-12)[:, None]
    skew = np.zeros((len(a), 3, 3))
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    skew = skew - skew.transpose(0, 2, 1)
    angle = np.arctan2(sin, cos)[:, None, None]
    return np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew


def tpose_rotations(joints: np.ndarray) -> np.ndarray:
    """(N, 24, 3) rest joints (A-pose) -> (N, 24, 3, 3) local rotations that lift the arms into a T-pose.

    Along each arm (shoulder -> elbow -> wrist -> hand) every bone is turned, by the smallest rotation, to
    point along +x (left) or -x (right); all other joints keep their rest rotation.
    """
    count = joints.shape[0]
    world = np.tile(np.eye(3), (count, NUM_JOINTS, 1, 1))
    for joint in range(1, NUM_JOINTS):
        world[:, joint] = world[:, SMPL_PARENTS[joint]]
        for side, chain in ARM_CHAINS.items():
            if joint in chain[:-1]:
                child = chain[chain.index(joint) + 1]
                bone = np.einsum("nij,nj->ni", world[:, joint], joints[:, child] - joints[:, joint])
                target = np.tile([1.0 if side == "left" else -1.0, 0.0, 0.0], (count, 1))
                world[:, joint] = rotation_between(bone, target) @ world[:, joint]
    local = world.copy()
    for joint in range(1, NUM_JOINTS):
        local[:, joint] = world[:, SMPL_PARENTS[joint]].transpose(0, 2, 1) @ world[:, joint]
    return local


def pose_with_lbs(
    vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray, rotations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The runtime model's skinning on raw arrays: (N,V,3), (N,24,3), (V,24), (N,24,3,3) -> posed (N,V,3), (N,24,3)."""
    rot = torch.from_numpy(rotations)
    posed_joints, transforms = batch_rigid_transform(
        rot, torch.from_numpy(joints), torch.tensor(SMPL_PARENTS), dtype=rot.dtype
    )
    posed = skin_vertices(torch.from_numpy(vertices), torch.from_numpy(weights), transforms)
    return posed.numpy(), posed_joints.numpy()


def shape_pca(meshes: np.ndarray, num_components: int = NUM_BETAS) -> dict[str, np.ndarray]:
    """(N, V, 3) meshes -> template (V,3), shapedirs (V,3,K) scaled to unit-variance betas, and statistics.

    Component signs are fixed (largest |entry| positive) so the export is deterministic.
    """
    count, num_vertices, _ = meshes.shape
    flat = meshes.reshape(count, -1)
    mean = flat.mean(axis=0)
    _, singular, vt = np.linalg.svd(flat - mean, full_matrices=False)
    components = vt[:num_components]
    signs = np.sign(components[np.arange(num_components), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    std = singular[:num_components] / math.sqrt(count - 1)
    variance = singular**2
    betas = (flat - mean) @ components.T / std
    recon = mean + (betas * std) @ components
    error = np.linalg.norm((recon - flat).reshape(count, num_vertices, 3), axis=-1)
    return {
        "template": mean.reshape(num_vertices, 3),
        "shapedirs": (components * std[:, None]).T.reshape(num_vertices, 3, num_components),
        "explained": np.cumsum(variance[:num_components]) / variance.sum(),
        "mean_error_m": np.array(error.mean()),
        "max_error_m": np.array(error.max()),
        "betas": betas,
    }


def fit_affine_regressor(
    meshes: np.ndarray, targets: np.ndarray, candidates: list[np.ndarray], ridge: float = 1e-6
) -> np.ndarray:
    """Fits one regressor row per target: weights over its candidate vertices that sum to one.

    meshes: (N, V, 3); targets: (N, K, 3); candidates: K index arrays. Returns (K, V) float64.
    Solved as ridge-regularised least squares with the sum-to-one constraint eliminated exactly
    (w = e/n + P z, P spanning the zero-sum subspace). Non-negative weights (as in SMPL) were tried and
    rejected: several of Anny's bone heads lie outside the convex hull of the nearby surface, which left
    errors of 5-7 cm; the affine fit reaches sub-millimetre error on held-in samples.
    """
    count, num_vertices, _ = meshes.shape
    regressor = np.zeros((targets.shape[1], num_vertices))
    for k, idx in enumerate(candidates):
        design = meshes[:, idx, :].transpose(0, 2, 1).reshape(count * 3, len(idx))
        rhs = targets[:, k, :].reshape(count * 3)
        n = len(idx)
        base = np.full(n, 1.0 / n)
        basis = np.linalg.qr(np.eye(n) - 1.0 / n)[0][:, : n - 1]  # orthonormal zero-sum directions
        reduced = design @ basis
        gram = reduced.T @ reduced + ridge * count * np.eye(n - 1)
        z = np.linalg.solve(gram, reduced.T @ (rhs - design @ base))
        regressor[k, idx] = base + basis @ z
    return regressor


def joint_candidates(
    template: np.ndarray, joints: np.ndarray, weights: np.ndarray, radius: float
) -> list[np.ndarray]:
    """Vertices that may enter each joint's regressor row: skinned to the joint or its parent, near it."""
    out = []
    for joint in range(NUM_JOINTS):
        influence = weights[:, joint] + (weights[:, SMPL_PARENTS[joint]] if joint else 0.0)
        distance = np.linalg.norm(template - joints[joint], axis=1)
        idx = np.nonzero((influence > 0.05) & (distance < radius))[0]
        out.append(idx[np.argsort(distance[idx], kind="stable")[:400]])
    return out


def landmark_rows(
    template: np.ndarray, faces_head: np.ndarray, eye_vertices: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Surface landmarks of the head as (V,) weight rows: head top, nose, eyes, ears, jaw.

    template: (V, 3) T-pose mean mesh; faces_head: vertex indices of the head part; eye_vertices: side -> eye
    surface vertex indices. Each row averages a few vertices so that it is stable under shape changes.
    """
    num_vertices = template.shape[0]

    def row(indices: np.ndarray) -> np.ndarray:
        weights = np.zeros(num_vertices)
        weights[indices] = 1.0 / len(indices)
        return weights

    head = np.unique(faces_head)
    pts = template[head]
    top = head[np.argsort(-pts[:, 1])[:5]]
    midline = head[np.abs(pts[:, 0]) < 0.01]
    eye_y = np.mean([template[v, 1].mean() for v in eye_vertices.values()])
    near_eyes = midline[np.abs(template[midline, 1] - (eye_y - 0.03)) < 0.015]
    nose = near_eyes[np.argsort(-template[near_eyes, 2])[:3]]
    chin_band = midline[template[midline, 2] > np.median(template[head, 2])]
    jaw = chin_band[np.argsort(template[chin_band, 1])[:3]]
    ear_band = head[np.abs(pts[:, 1] - eye_y) < 0.02]
    rows = {"head_top": row(top), "nose": row(nose), "jaw": row(jaw)}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        rows[f"{side}_eye"] = row(eye_vertices[side])
        rows[f"{side}_ear"] = row(ear_band[np.argsort(-sign * template[ear_band, 0])[:4]])
    return rows


def keypoint_regressors(
    joint_regressor: np.ndarray, landmarks: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """SPIN-24 and H36M-17 keypoint regressors for the open model, built from its joints and landmarks.

    Row orders are the field's files': SPIN-24 as constants.SPIN24_NAMES, H36M-17 as J_regressor_h36m.npy
    (constants.H36M17_NAMES: rows 1-3 the left leg). LSP/MPII/H36M limb joints are taken as the matching SMPL
    joints; points with no SMPL joint
    (head top, nose, eyes, ears, jaw) come from surface landmarks; in-between points are averages.
    """
    J = joint_regressor

    def mix(*rows: np.ndarray) -> np.ndarray:
        return np.mean(rows, axis=0)

    spin24 = np.stack([
        J[8], J[5], J[2], J[1], J[4], J[7], J[21], J[19], J[17], J[16], J[18], J[20],  # LSP limbs
        J[12], landmarks["head_top"], J[0], mix(J[16], J[17]), mix(J[3], J[6]), landmarks["jaw"],
        mix(J[15], landmarks["head_top"]), landmarks["nose"], landmarks["left_eye"], landmarks["right_eye"],
        landmarks["left_ear"], landmarks["right_ear"],
    ])  # fmt: skip
    h36m17 = np.stack([
        J[0], J[1], J[4], J[7], J[2], J[5], J[8], mix(J[3], J[6]), mix(J[16], J[17]), landmarks["nose"],
        landmarks["head_top"], J[16], J[18], J[20], J[17], J[19], J[21],
    ])  # fmt: skip
    return {"spin24": spin24, "h36m17": h36m17}


def read_anny_meshes(config: ExportConfig):
    """Builds Anny, reads rest meshes of sampled adults; returns the pieces the export needs (SMPL axes)."""
    import anny  # optional dependency: `pip install .[anny]`
    from anny.face_segmentation import get_face_segmentation_mask

    torch.manual_seed(config.seed)
    model = anny.Anny(rig="game_engine", topology="anny-notongue")
    labels = list(model.bone_labels)
    phenotypes = sample_adult_phenotypes(list(model.phenotype_labels), config)
    vertices, heads = [], []
    with torch.no_grad():
        for start in range(0, config.num_samples, config.batch_size):
            batch = {k: v[start : start + config.batch_size] for k, v in phenotypes.items()}
            out = model(phenotype_kwargs=batch)
            vertices.append(out["rest_vertices"].numpy() @ ANNY_TO_SMPL_AXES.T)
            heads.append(out["rest_bone_poses"][..., :3, 3].numpy() @ ANNY_TO_SMPL_AXES.T)
    faces = model.get_triangular_faces().numpy().astype(np.int64)
    masks = {
        label: get_face_segmentation_mask(model, [label]).numpy()
        for label in (*DROPPED_LABELS, "eye_front.L", "eye_front.R")
    }
    return {
        "vertices": np.concatenate(vertices),
        "heads": np.concatenate(heads),
        "faces": faces,
        "weights": merged_skinning_weights(model, labels),
        "bone_labels": labels,
        "masks": masks,
        "anny_version": getattr(anny, "__version__", "0.6.2"),
    }


def drop_faces(faces: np.ndarray, drop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Removes flagged faces and the vertices no face uses. Returns (new faces, kept old vertex ids)."""
    kept_faces = faces[~drop]
    kept_vertices = np.unique(kept_faces)
    remap = np.full(faces.max() + 1, -1, dtype=np.int64)
    remap[kept_vertices] = np.arange(len(kept_vertices))
    return remap[kept_faces], kept_vertices


def build_asset(config: ExportConfig, log=print) -> dict[str, np.ndarray]:
    """Runs the whole export and returns the asset's arrays (see module docstring)."""
    torch.set_num_threads(1)
    raw = read_anny_meshes(config)
    drop = np.zeros(len(raw["faces"]), dtype=bool)
    for label in DROPPED_LABELS:
        drop |= raw["masks"][label]
    faces, kept = drop_faces(raw["faces"], drop)
    old_to_new = {old: new for new, old in enumerate(kept)}
    weights = raw["weights"][kept]
    rest_vertices = raw["vertices"][:, kept]
    rest_joints = smpl_joints_from_bone_heads(raw["heads"], raw["bone_labels"])
    log(f"anny: {len(raw['faces'])} faces -> {len(faces)} after dropping cavities; {len(kept)} vertices")

    tposed, tposed_joints = pose_with_lbs(rest_vertices, rest_joints, weights, tpose_rotations(rest_joints))
    pelvis = tposed_joints[:, :1].mean(axis=0, keepdims=True)
    tposed, tposed_joints = tposed - pelvis, tposed_joints - pelvis

    pca = shape_pca(tposed)
    explained = np.round(pca["explained"], 4).tolist()
    log(
        f"shape PCA over {config.num_samples} adults: variance explained by 1..10 components {explained}; "
        f"reconstruction error mean {1e3 * pca['mean_error_m']:.2f} mm, max {1e3 * pca['max_error_m']:.2f} mm"
    )
    template = pca["template"]
    mean_joints = tposed_joints.mean(axis=0)
    candidates = joint_candidates(template, mean_joints, weights, config.regressor_radius)
    J_regressor = fit_affine_regressor(tposed, tposed_joints, candidates)
    fit_error = np.linalg.norm(np.einsum("kv,nvc->nkc", J_regressor, tposed) - tposed_joints, axis=-1)
    log(f"joint regressor: mean error {1e3 * fit_error.mean():.2f} mm, max {1e3 * fit_error.max():.2f} mm")

    parts = segment_dense_parts(template, faces, weights, mean_joints)
    eye_vertices = {}
    for side, label in (("left", "eye_front.L"), ("right", "eye_front.R")):
        eye_faces = raw["faces"][raw["masks"][label]]
        eye_vertices[side] = np.array(sorted(old_to_new[v] for v in np.unique(eye_faces) if v in old_to_new))
    head_faces = faces[np.isin(parts["face_part"], (23, 24))]
    landmarks = landmark_rows(template, head_faces, eye_vertices)
    regressors = keypoint_regressors(J_regressor, landmarks)

    kintree = np.array(
        [[4294967295 if p < 0 else p for p in SMPL_PARENTS], list(range(NUM_JOINTS))], dtype=np.int64
    )
    meta = {
        "name": "anny-smpl24",
        "source": f"anny {raw['anny_version']} (rig game_engine, topology anny-notongue)",
        "config": config.__dict__,
        "pca_explained": np.round(pca["explained"], 6).tolist(),
        "pca_mean_error_mm": round(float(1e3 * pca["mean_error_m"]), 4),
        "regressor_mean_error_mm": round(float(1e3 * fit_error.mean()), 4),
    }
    return {
        "v_template": template.astype(np.float32),
        "shapedirs": pca["shapedirs"].astype(np.float32),
        "J_regressor": J_regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree,
        "f": faces.astype(np.int32),
        "vertex_mirror": vertex_mirror_map(template).astype(np.int32),
        "regressor_spin24": regressors["spin24"].astype(np.float32),
        "regressor_h36m17": regressors["h36m17"].astype(np.float32),
        "parts_render_to_body": parts["render_to_body"].astype(np.int32),
        "parts_part": parts["part"].astype(np.int8),
        "parts_uv": parts["uv"].astype(np.float32),
        "parts_faces": parts["faces"].astype(np.int32),
        "meta_json": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
    }
