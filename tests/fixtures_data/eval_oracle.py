"""An independent evaluation oracle for tests: the mean-pose baseline's MPJPE / PA-MPJPE computed in numpy
(its own decoding of SPIN's 6D mean pose, its own Procrustes), from the body model and the ground truth only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# SPIN's constants.H36M_TO_J17 (published): the 14 LSP joints' rows of the H36M-17 regressor; H36M's pelvis
# is its row 0.
SPIN_H36M_TO_J14 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)


# -- an independent mean-pose baseline -----------------------------------------------------------------------


def spin_6d_to_matrices(pose144: np.ndarray) -> np.ndarray:
    """SPIN's smpl_mean_params.npz pose: per joint the rotation's first two columns, stored row-major as a
    3 x 2 block; Gram-Schmidt gives the third."""
    block = pose144.reshape(24, 3, 2).astype(np.float64)
    a1, a2 = block[..., 0], block[..., 1]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    b2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 /= np.linalg.norm(b2, axis=-1, keepdims=True)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=-1)


def lsp14(body, vertices: torch.Tensor) -> np.ndarray:
    joints = body.regress(vertices, "h36m17").double().numpy()
    return joints[:, list(SPIN_H36M_TO_J14)] - joints[:, :1]


def procrustes_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean joint error (m) after the similarity transform taking pred closest to gt (Umeyama)."""
    mp, mg = pred.mean(0), gt.mean(0)
    x, y = pred - mp, gt - mg
    u, s, vt = np.linalg.svd(x.T @ y)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))])
    rotation = vt.T @ d @ u.T
    scale = np.trace(np.diag(s) @ d) / (x**2).sum()
    aligned = scale * x @ rotation.T + mg
    return float(np.linalg.norm(aligned - gt, axis=-1).mean())


def mean_pose_errors(body, mean_params: Path, targets: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample MPJPE and PA-MPJPE (mm) of the mean parameters against every sample's SMPL fit."""
    with np.load(mean_params) as data:
        rotations = torch.as_tensor(spin_6d_to_matrices(data["pose"]), dtype=torch.float32)
        betas = torch.as_tensor(data["shape"], dtype=torch.float32).reshape(1, 10)
    with torch.no_grad():
        mean = lsp14(body, body(betas=betas, pose=rotations[None]).vertices)[0]
        gts = np.concatenate([lsp14(body, t["smpl_vertices"]) for t in targets])
    mpjpe = np.linalg.norm(gts - mean, axis=-1).mean(-1) * 1000
    pa = np.array([procrustes_error(mean, gt) for gt in gts]) * 1000
    return mpjpe, pa


def split_targets(folder: Path, body, image_size: int = 64, map_size: int = 16) -> list[dict]:
    """batch_to_inputs' targets of a split's shards, in the evaluation's order (no shuffle, no augmentation)."""
    from model.training.targets import batch_to_inputs
    from pipeline.augment import AugmentConfig
    from pipeline.loader import Source, make_dataset

    dataset = make_dataset(
        [Source(str(folder))], batch_size=8, augment=AugmentConfig(enabled=False), shuffle=False,
        onehot=False, seed=0,
    )  # fmt: skip
    return [batch_to_inputs(b, image_size, map_size, body, torch.device("cpu"))[1] for b in dataset]
