"""SPIN-style annotation .npz files (and their images), including the broken variants seen in the wild."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .images import write_image

IMAGE_W, IMAGE_H = 64, 48


def spin_arrays(imgnames: list[str], seed: int = 0, lsp_style: bool = False) -> dict[str, np.ndarray]:
    """Plausible SPIN arrays for ``imgnames`` on a 64x48 image: keypoints float64, fits float32.

    ``lsp_style``: only joints 0-13 of ``part`` are filled (as in LSP), and no ``S``.
    """
    rng = np.random.default_rng(seed)
    n = len(imgnames)
    part = np.zeros((n, 24, 3))
    k = 14 if lsp_style else 24
    part[:, :k, 0] = rng.uniform(10, 50, (n, k))
    part[:, :k, 1] = rng.uniform(8, 40, (n, k))
    part[:, :k, 2] = 1.0
    arrays = {
        "imgname": np.array(imgnames),
        "center": np.tile([32.0, 24.0], (n, 1)),
        "scale": np.full(n, 0.25),
        "part": part,
        "pose": rng.normal(0, 0.2, (n, 72)).astype(np.float32),
        "shape": rng.normal(0, 1, (n, 10)).astype(np.float32),
        "has_smpl": np.ones(n),
        "gender": np.array(["m" if i % 2 else "f" for i in range(n)]),
    }
    if not lsp_style:
        S = np.zeros((n, 24, 4))
        S[..., :3] = rng.normal(0, 0.5, (n, 24, 3))
        S[..., 3] = 1.0
        arrays["S"] = S
        arrays["openpose"] = np.zeros((n, 25, 3))
    return arrays


def write_images(dataset_dir: Path, imgnames: list[str], skip: set[str] = frozenset()) -> None:
    """Write one tiny image per distinct name (except ``skip``) under ``dataset_dir``."""
    for i, name in enumerate(sorted(set(imgnames) - set(skip))):
        write_image(dataset_dir / name, IMAGE_W, IMAGE_H, seed=i)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path
