"""The mean SMPL parameters of a training set, in the layout of SPIN's smpl_mean_params.npz.

The mean pose of each body joint is the chordal L2 mean of its rotations (average the matrices, project back
onto SO(3) by SVD); the root keeps SPIN's upright, camera-facing orientation (a rotation by pi about x),
since averaging headings over a full circle has no meaning. Betas are averaged; cam is SPIN's [0.9, 0, 0].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation


def chordal_mean(rotations: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations -> (3, 3) the rotation nearest to their arithmetic mean (Frobenius norm)."""
    u, _, vt = np.linalg.svd(rotations.mean(axis=0))
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def mean_smpl_params(poses: np.ndarray, betas: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 72) axis-angle poses, (N, 10) betas -> {pose (144,) = 24 x 6D, shape (10,), cam (3,)} float32.

    The 6D layout is SPIN's: the first two columns of each rotation matrix, row-major (r00, r01, r10, ...).
    """
    rotations = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(len(poses), 24, 3, 3)
    mean = np.stack([chordal_mean(rotations[:, j]) for j in range(24)])
    mean[0] = Rotation.from_rotvec([np.pi, 0.0, 0.0]).as_matrix()
    six_d = mean[:, :, :2].reshape(24, 6)
    return {
        "pose": six_d.reshape(144).astype(np.float32),
        "shape": betas.mean(axis=0).astype(np.float32),
        "cam": np.array([0.9, 0.0, 0.0], dtype=np.float32),
    }


def write_mean_params(path: str | Path, poses: np.ndarray, betas: np.ndarray) -> None:
    """Writes mean_smpl_params(...) to `path` (.npz), atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **mean_smpl_params(poses, betas))
    tmp.replace(path)
