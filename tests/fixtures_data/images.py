"""Tiny images written with OpenCV (the real datasets are JPEG/PNG)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """Write a small noise image of ``width`` x ``height`` (format from the suffix) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cv2 could not write {path}")
    return path
