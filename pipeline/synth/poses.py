"""Plausible SMPL poses for the synthetic dataset: activity templates plus noise, clipped to joint limits.

Uniform noise over axis-angle gives contorted bodies a model can't learn anything useful from. Here a pose
is an activity template (standing, walking, sitting, arms raised, crouching, reaching across the body, T/A
pose), jittered per joint and clipped to per-joint Euler limits (XYZ, radians, SMPL local axes: x flexion,
y twist, z abduction), then mirrored left/right half of the time.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from pipeline.body.constants import NUM_JOINTS, SMPL_JOINT_FLIP

# (low, high) Euler XYZ limits per joint, left side; right-side limits are mirrored (y, z negated).
_LIMITS_LEFT: dict[int, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    1: ((-2.2, -0.5, -0.3), (0.6, 0.5, 0.9)),  # left hip
    3: ((-0.4, -0.4, -0.3), (0.7, 0.4, 0.3)),  # spine1
    4: ((0.0, -0.1, -0.1), (2.4, 0.1, 0.1)),  # left knee
    6: ((-0.3, -0.3, -0.2), (0.5, 0.3, 0.2)),  # spine2
    7: ((-0.6, -0.3, -0.3), (0.6, 0.3, 0.3)),  # left ankle
    9: ((-0.3, -0.3, -0.2), (0.4, 0.3, 0.2)),  # spine3
    10: ((-0.2, -0.1, -0.1), (0.3, 0.1, 0.1)),  # left foot
    12: ((-0.4, -0.5, -0.3), (0.5, 0.5, 0.3)),  # neck
    13: ((-0.2, -0.3, -0.3), (0.2, 0.3, 0.3)),  # left collar
    15: ((-0.4, -0.6, -0.3), (0.5, 0.6, 0.3)),  # head
    16: ((-1.0, -1.5, -1.4), (1.0, 0.7, 1.1)),  # left shoulder
    18: ((-0.3, -2.4, -0.3), (0.3, 0.0, 0.3)),  # left elbow
    20: ((-0.6, -0.5, -0.6), (0.6, 0.5, 0.6)),  # left wrist
    22: ((-0.2, -0.2, -0.3), (0.2, 0.2, 0.3)),  # left hand
}
_NOISE = {3: 0.12, 6: 0.1, 9: 0.1, 12: 0.15, 15: 0.2, 1: 0.2, 4: 0.2, 7: 0.15, 16: 0.3, 18: 0.3, 20: 0.2}

# Activity templates: joint -> Euler XYZ (left side and centre joints; right side given explicitly).
TEMPLATES: dict[str, dict[int, tuple[float, float, float]]] = {
    "t_pose": {},
    "a_pose": {16: (0, 0, -0.8), 17: (0, 0, 0.8)},
    "standing": {16: (0, 0, -1.25), 17: (0, 0, 1.25), 18: (0, -0.2, 0), 19: (0, 0.2, 0)},
    "walking": {
        1: (-0.45, 0, 0.05),
        2: (0.35, 0, -0.05),
        4: (0.3, 0, 0),
        5: (0.7, 0, 0),
        16: (0, 0.35, -1.25),
        17: (0, 0.35, 1.25),
        18: (0, -0.4, 0),
        19: (0, 0.3, 0),
        3: (0.05, 0.1, 0),
    },  # fmt: skip
    "sitting": {
        1: (-1.5, 0, 0.15),
        2: (-1.5, 0, -0.15),
        4: (1.5, 0, 0),
        5: (1.5, 0, 0),
        16: (0, -0.5, -1.1),
        17: (0, 0.5, 1.1),
        18: (0, -1.0, 0),
        19: (0, 1.0, 0),
    },  # fmt: skip
    "arms_raised": {16: (0, 0, 1.0), 17: (0, 0, -1.0), 18: (0, 0, 0.2), 19: (0, 0, -0.2)},
    "crouching": {
        1: (-2.0, 0, 0.3),
        2: (-2.0, 0, -0.3),
        4: (2.2, 0, 0),
        5: (2.2, 0, 0),
        7: (0.4, 0, 0),
        8: (0.4, 0, 0),
        3: (0.3, 0, 0),
        16: (0, -0.8, -0.8),
        17: (0, 0.8, 0.8),
        18: (0, -0.8, 0),
        19: (0, 0.8, 0),
    },  # fmt: skip
    "reaching_across": {
        16: (0, -1.2, -0.4),
        18: (0, -0.6, 0),
        17: (0, 1.3, 0.3),
        19: (0, 1.6, 0),
        3: (0, 0.3, 0),
        6: (0, 0.2, 0),
        12: (0, 0.3, 0),
    },  # fmt: skip
    "lunge": {
        1: (-1.2, 0, 0.1),
        4: (1.2, 0, 0),
        2: (0.5, 0, -0.1),
        5: (0.3, 0, 0),
        16: (0, 0, -1.0),
        17: (0, 0, 1.0),
    },
}
TEMPLATE_WEIGHTS = {
    "t_pose": 0.03, "a_pose": 0.07, "standing": 0.2, "walking": 0.2, "sitting": 0.12, "arms_raised": 0.1,
    "crouching": 0.08, "reaching_across": 0.1, "lunge": 0.1,
}  # fmt: skip


def _limit_table() -> tuple[np.ndarray, np.ndarray]:
    """(24, 3) lower and upper Euler limits for every joint; right side mirrored from the left."""
    low = np.zeros((NUM_JOINTS, 3))
    high = np.zeros((NUM_JOINTS, 3))
    for joint, (lo, hi) in _LIMITS_LEFT.items():
        low[joint], high[joint] = lo, hi
        mirror = SMPL_JOINT_FLIP[joint]
        if mirror != joint:
            # mirroring negates y and z, which swaps and negates their bounds
            low[mirror] = (lo[0], -hi[1], -hi[2])
            high[mirror] = (hi[0], -lo[1], -lo[2])
    return low, high


LIMITS_LOW, LIMITS_HIGH = _limit_table()


def mirror_euler(euler: np.ndarray) -> np.ndarray:
    """(..., 24, 3) Euler poses -> the left/right mirrored poses (joints swapped, y and z negated)."""
    out = euler[..., list(SMPL_JOINT_FLIP), :].copy()
    out[..., 1:] *= -1
    return out


def template_euler(names: list[str]) -> np.ndarray:
    """(N, 24, 3) noise-free Euler poses of the named templates (not mirrored, not clipped)."""
    euler = np.zeros((len(names), NUM_JOINTS, 3))
    for i, name in enumerate(names):
        for joint, angles in TEMPLATES[name].items():
            euler[i, joint] = angles
    return euler


def sample_body_poses(rng: np.random.Generator, count: int) -> tuple[np.ndarray, list[str]]:
    """(count, 24, 3) Euler XYZ body poses (root zero) and the template name of each."""
    names = list(TEMPLATES)
    probs = np.array([TEMPLATE_WEIGHTS[n] for n in names])
    chosen = [names[i] for i in rng.choice(len(names), size=count, p=probs / probs.sum())]
    noise_scale = np.full(NUM_JOINTS, 0.05)
    for joint, sigma in _NOISE.items():
        noise_scale[joint] = noise_scale[SMPL_JOINT_FLIP[joint]] = sigma
    euler = template_euler(chosen)
    euler += rng.normal(size=euler.shape) * noise_scale[None, :, None]
    flip = rng.random(count) < 0.5
    euler[flip] = mirror_euler(euler[flip])
    euler = np.clip(euler, LIMITS_LOW, LIMITS_HIGH)
    euler[:, 0] = 0.0
    return euler, chosen


def euler_to_axis_angle(euler: np.ndarray) -> np.ndarray:
    """(..., 3) intrinsic XYZ Euler angles (radians) -> (..., 3) axis-angle."""
    flat = euler.reshape(-1, 3)
    return Rotation.from_euler("XYZ", flat).as_rotvec().reshape(euler.shape)


def camera_frame_global_orient(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 3) axis-angle global orientations in the camera frame (x right, y down, z forward).

    A body in SMPL's frame (y up, facing +z) is turned to face the camera (rotation by pi about x), then
    given a random heading (any yaw), a small pitch and a small roll.
    """
    yaw = rng.uniform(-np.pi, np.pi, count)
    pitch = rng.normal(0.0, 0.12, count)
    roll = rng.normal(0.0, 0.08, count)
    upright = Rotation.from_euler("x", np.pi)
    body = Rotation.from_euler("ZXY", np.stack([roll, pitch, yaw], axis=1))
    return (upright * body).as_rotvec()
