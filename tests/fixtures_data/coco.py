"""COCO person-keypoint JSON with DensePose-COCO fields, and matching tiny JPEGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from .images import write_image

IMAGE_W, IMAGE_H = 80, 60


def _rle(seed: int) -> dict:
    m = np.zeros((256, 256), np.uint8, order="F")
    m[seed * 10 : seed * 10 + 40, 30:90] = 1
    rle = mask_utils.encode(m)
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def keypoints(rng: np.random.Generator, visible: int = 17) -> list[float]:
    kp = np.zeros((17, 3))
    kp[:visible, 0] = rng.uniform(10, 70, visible)
    kp[:visible, 1] = rng.uniform(5, 55, visible)
    kp[:visible, 2] = 2
    return kp.reshape(-1).tolist()


def dense_points(rng: np.random.Generator, n: int) -> dict:
    return {
        "dp_x": rng.uniform(0, 256, n).tolist(),
        "dp_y": rng.uniform(0, 256, n).tolist(),
        "dp_I": rng.integers(1, 25, n).astype(float).tolist(),
        "dp_U": rng.uniform(0, 1, n).tolist(),
        "dp_V": rng.uniform(0, 1, n).tolist(),
        "dp_masks": [_rle(1), [], _rle(2)] + [[] for _ in range(11)],
    }


def write_coco(json_path: Path, image_dir: Path, annotations: list[dict], n_images: int = 2) -> dict:
    """Write ``n_images`` JPEGs named like COCO's and a JSON with ``annotations`` (ids/category filled in)."""
    images = []
    for i in range(1, n_images + 1):
        name = f"COCO_train2014_{i:012d}.jpg"
        write_image(image_dir / name, IMAGE_W, IMAGE_H, seed=i)
        images.append({"id": i, "file_name": name, "width": IMAGE_W, "height": IMAGE_H})
    anns = []
    for k, ann in enumerate(annotations, start=1):
        base = {"id": 100 + k, "category_id": 1, "iscrowd": 0, "area": 100.0, "num_keypoints": 0}
        anns.append({**base, **ann})
    doc = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc))
    return doc
