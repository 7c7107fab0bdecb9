"""3DPW sequence pickles written the way the real ones are (Python 2 pickles of numpy arrays)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from .images import write_image
from .py2pickle import dump_py2

IMAGE_W, IMAGE_H = 48, 80  # 3DPW frames are portrait (1080 x 1920), here tiny


def sequence_dict(seq: str, n_frames: int, valid: list[list[int]], genders: list[str], seed: int = 0) -> dict:
    """A 3DPW-style dict with one person per entry of ``valid`` (per-frame campose_valid flags).

    Camera k rotates by 30 deg * k about y; each person's 2D joints lie inside the image with confidence 0.8.
    """
    rng = np.random.default_rng(seed)
    n_people = len(valid)
    cam = np.tile(np.eye(4), (n_frames, 1, 1))
    cam[:, :3, :3] = Rotation.from_euler("y", 30.0 * np.arange(n_frames)[:, None], degrees=True).as_matrix()
    cam[:, :3, 3] = [0.1, 0.2, 3.0]
    poses2d = []
    for _ in range(n_people):
        kp = np.zeros((n_frames, 3, 18))
        kp[:, 0] = rng.uniform(5, IMAGE_W - 5, (n_frames, 18))
        kp[:, 1] = rng.uniform(5, IMAGE_H - 5, (n_frames, 18))
        kp[:, 2] = 0.8
        poses2d.append(kp)
    return {
        "sequence": seq,
        "img_frame_ids": np.arange(n_frames),
        "poses": [rng.normal(0, 0.3, (n_frames, 72)) for _ in range(n_people)],
        "betas": [rng.normal(0, 1, 300) for _ in range(n_people)],  # 3DPW stores more than 10
        "trans": [rng.normal(0, 1, (n_frames, 3)) for _ in range(n_people)],
        "poses2d": poses2d,
        "jointPositions": [rng.normal(0, 1, (n_frames, 72)) for _ in range(n_people)],
        "cam_poses": cam,
        "campose_valid": [np.array(v, dtype=np.int64) for v in valid],
        "cam_intrinsics": np.array([[50.0, 0, 24], [0, 50.0, 40], [0, 0, 1]]),
        "genders": genders,
    }


def write_sequence(root: Path, split: str, data: dict, images: bool = True) -> Path:
    """Write ``sequenceFiles/<split>/<seq>.pkl`` (and its frames under ``imageFiles/<seq>/``) in ``root``."""
    seq = data["sequence"]
    if images:
        for f in range(len(data["cam_poses"])):
            write_image(root / "imageFiles" / seq / f"image_{f:05d}.jpg", IMAGE_W, IMAGE_H, seed=f)
    return dump_py2(data, root / "sequenceFiles" / split / f"{seq}.pkl")
