"""DensePose-style dense parts for a T-posed SMPL-format mesh that has no DensePose chart of its own.

Each face gets the part of the joint that drives it most (its mean skinning weight), split front/back
(limbs, torso) or right/left (head) as DensePose does. Each part gets a (U, V) chart that is continuous
inside the part: limbs are unrolled around their bone axis (U = angle over the half-cylinder, V = position
along the bone), the torso, hands, feet and head halves are projected onto a plane. U and V are normalised
to [0, 1] per part. Used once, by the body-model export; the result is stored in the asset.
"""

from __future__ import annotations

import numpy as np

from pipeline.body.constants import NUM_JOINTS

# SMPL joint -> (part if in front / on the right, part if behind / on the left) per DensePose numbering.
_LIMB_PARTS = {
    1: (10, 8), 2: (9, 7),  # upper legs (left hip, right hip): (front, back)
    4: (14, 12), 5: (13, 11),  # lower legs
    16: (17, 15), 17: (18, 16),  # upper arms
    18: (21, 19), 19: (22, 20),  # lower arms
}  # fmt: skip
_LIMB_CHILD = {1: 4, 2: 5, 4: 7, 5: 8, 16: 18, 17: 19, 18: 20, 19: 21}
_TORSO_JOINTS = (0, 3, 6, 9, 13, 14)
_HEAD_JOINTS = (12, 15)
_HAND_PART = {20: 4, 22: 4, 21: 3, 23: 3}  # left hand 4, right hand 3
_FOOT_PART = {7: 5, 10: 5, 8: 6, 11: 6}  # left foot 5, right foot 6
TORSO_FRONT, TORSO_BACK, HEAD_RIGHT, HEAD_LEFT = 2, 1, 23, 24


def dominant_joint(faces: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(F, 3) faces, (V, 24) skinning weights -> (F,) joint with the largest mean weight over the corners."""
    return weights[faces].mean(axis=1).argmax(axis=1)


def _torso_centre_z(vertices: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """z of the torso's front/back dividing plane at each height: the middle of the torso's z extent there."""
    bins = np.round(vertices[:, 1] / 0.02).astype(np.int64)
    centre = {b: 0.5 * (vertices[bins == b, 2].min() + vertices[bins == b, 2].max()) for b in np.unique(bins)}
    keys = np.array(sorted(centre))
    query = np.clip(np.round(heights / 0.02).astype(np.int64), keys[0], keys[-1])
    return np.interp(query, keys, [centre[k] for k in keys])


def assign_face_parts(
    vertices: np.ndarray, faces: np.ndarray, weights: np.ndarray, joints: np.ndarray
) -> np.ndarray:
    """(V,3) T-pose vertices, (F,3) faces, (V,24) weights, (24,3) joints -> (F,) DensePose part 1..24."""
    owner = dominant_joint(faces, weights)
    centroid = vertices[faces].mean(axis=1)
    part = np.zeros(len(faces), dtype=np.int64)
    torso = np.isin(owner, _TORSO_JOINTS)
    if torso.any():
        torso_vertices = np.unique(faces[torso])
        centre = _torso_centre_z(vertices[torso_vertices], centroid[torso, 1])
        part[torso] = np.where(centroid[torso, 2] >= centre, TORSO_FRONT, TORSO_BACK)
    head = np.isin(owner, _HEAD_JOINTS)
    part[head] = np.where(centroid[head, 0] < 0, HEAD_RIGHT, HEAD_LEFT)
    for table in (_HAND_PART, _FOOT_PART):
        for joint, value in table.items():
            part[owner == joint] = value
    for joint, (front, back) in _LIMB_PARTS.items():
        sel = owner == joint
        axis = joints[_LIMB_CHILD[joint]] - joints[joint]
        axis /= np.linalg.norm(axis)
        offset = centroid[sel] - joints[joint]
        radial = offset - np.outer(offset @ axis, axis)  # offset from the bone's axis, not its head
        part[sel] = np.where(radial[:, 2] >= 0, front, back)
    assert part.min() >= 1, "every SMPL joint must map onto a part"
    return part


def _normalise(values: np.ndarray) -> np.ndarray:
    low, high = values.min(), values.max()
    return (values - low) / max(high - low, 1e-9)


def _limb_uv(points: np.ndarray, start: np.ndarray, end: np.ndarray, front: bool) -> np.ndarray:
    """Unrolls a half-cylinder around the bone start->end: U = angle across the half, V = along the bone."""
    axis = (end - start) / np.linalg.norm(end - start)
    forward = np.array([0.0, 0.0, 1.0]) - axis[2] * axis
    forward /= np.linalg.norm(forward)
    side = np.cross(axis, forward)
    offset = points - start
    facing = offset @ forward if front else -(offset @ forward)
    angle = np.arctan2(offset @ side, facing)  # in [-pi/2, pi/2] on this half
    u = np.clip((angle + np.pi / 2) / np.pi, 0.0, 1.0)
    return np.stack([u, _normalise(offset @ axis)], axis=1)


def _planar_uv(points: np.ndarray, u_axis: int, v_axis: int) -> np.ndarray:
    return np.stack([_normalise(points[:, u_axis]), _normalise(points[:, v_axis])], axis=1)


def part_uv(points: np.ndarray, part: int, joints: np.ndarray) -> np.ndarray:
    """(N, 3) vertices of one part (T-pose, SMPL axes) -> (N, 2) U, V in [0, 1]."""
    for joint, (front, back) in _LIMB_PARTS.items():
        if part in (front, back):
            return _limb_uv(points, joints[joint], joints[_LIMB_CHILD[joint]], front=part == front)
    if part in (TORSO_FRONT, TORSO_BACK):
        return _planar_uv(points, 0, 1)
    if part in (HEAD_RIGHT, HEAD_LEFT):
        return _planar_uv(points, 2, 1)
    if part in (3, 4):  # hands lie along x in the T-pose
        return _planar_uv(points, 2, 0)
    return _planar_uv(points, 0, 2)  # feet point along z


def segment_dense_parts(
    vertices: np.ndarray, faces: np.ndarray, weights: np.ndarray, joints: np.ndarray
) -> dict[str, np.ndarray]:
    """Builds the render-vertex table: every (body vertex, part) pair used by a face becomes a render vertex.

    Returns render_to_body (R,), part (R,), uv (R, 2), faces (F, 3) over render vertices, face_part (F,).
    """
    assert weights.shape[1] == NUM_JOINTS and joints.shape == (NUM_JOINTS, 3)
    face_part = assign_face_parts(vertices, faces, weights, joints)
    pairs = np.stack([faces.reshape(-1), np.repeat(face_part, 3)], axis=1)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    render_faces = inverse.reshape(-1, 3)
    uv = np.zeros((len(unique), 2))
    for part in np.unique(unique[:, 1]):
        sel = unique[:, 1] == part
        uv[sel] = part_uv(vertices[unique[sel, 0]], int(part), joints)
    return {
        "render_to_body": unique[:, 0],
        "part": unique[:, 1],
        "uv": uv,
        "faces": render_faces,
        "face_part": face_part,
    }
