"""UP-3D's own files: NNNNN_image.png, NNNNN_body.pkl (Python 2 pickle), NNNNN_joints.npy, split lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .images import write_image
from .py2pickle import dump_py2

IMAGE_W, IMAGE_H = 60, 50


def write_sample(folder: Path, stem: str, seed: int, *, rt=(0.0, 0.0, 0.0), joints_shape=(3, 14)) -> dict:
    """Write one UP-3D sample; returns the body dict and the joints written."""
    rng = np.random.default_rng(seed)
    body = {
        "pose": rng.normal(0, 0.3, 72),
        "betas": rng.normal(0, 1, 10),
        "trans": np.array([0.0, 0.1, 5.0]),
        "f": np.array([500.0, 500.0]),
        "t": np.array([0.0, 0.0, 0.0]),
        "rt": np.asarray(rt, np.float64),
    }
    dump_py2(body, folder / f"{stem}_body.pkl")
    joints = np.zeros(joints_shape)
    if joints_shape == (3, 14):
        joints[0] = rng.uniform(10, 50, 14)
        joints[1] = rng.uniform(10, 40, 14)
        joints[2] = 1.0
        joints[2, 3] = 0.0  # one invisible joint
    np.save(folder / f"{stem}_joints.npy", joints)
    write_image(folder / f"{stem}_image.png", IMAGE_W, IMAGE_H, seed=seed)
    return {"body": body, "joints": joints}


def write_split(folder: Path, name: str, stems: list[str]) -> Path:
    """UP-3D list format: '/NNNNN_image.png' per line, trailing newline."""
    path = folder / name
    path.write_text("".join(f"/{s}_image.png\n" for s in stems))
    return path
