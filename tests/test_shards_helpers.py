"""Small synthetic manifests for the shard, loader and augmentation tests (and bench/): no tests here.

Each image is a noisy picture with one or two people; each person is a manifest row (docs/design.md)
whose kp2d lie inside its box, with a random small SMPL pose and kp3d for some rows.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.fixtures_data.renderers import KEYPOINT_DISK, keypoint_disk_renderer

RENDERER = KEYPOINT_DISK
# The same drawings, 50 ms per call: a stage that is reliably still running when a test kills it.
SLOW_RENDERER = "tests.test_shards_helpers:slow_keypoint_disk_renderer"


def slow_keypoint_disk_renderer(rows, crop_transforms, crop_size):
    import time

    time.sleep(0.05)
    return keypoint_disk_renderer(rows, crop_transforms, crop_size)


def make_rows(n: int, seed: int = 0, image_size: tuple[int, int] = (160, 120)) -> list[dict]:
    """``n`` manifest rows over ``ceil(n / 2)`` images named ``images/imNNNN.jpg`` (two people per image)."""
    rng = np.random.default_rng(seed)
    w, h = image_size
    rows = []
    for i in range(n):
        scale = float(rng.uniform(0.25, 0.45)) * w / 160  # people fill a similar share of any image size
        side = 200 * scale
        center = [float(rng.uniform(side / 3, w - side / 3)), float(rng.uniform(side / 3, h - side / 3))]
        kp = np.zeros((24, 3))
        kp[:, :2] = np.asarray(center) + rng.uniform(-0.4, 0.4, (24, 2)) * side
        kp[:, 2] = (rng.uniform(size=24) > 0.15).astype(float)
        kp3d = np.concatenate([rng.normal(0, 0.4, (24, 3)), np.ones((24, 1))], axis=1)
        rows.append(
            {
                "sample_id": f"s{i:04d}",
                "dataset": "toy",
                "split": "train",
                "image_path": f"images/im{i // 2:04d}.jpg",
                "center": center,
                "scale": scale,
                "has_smpl": bool(i % 3 != 2),
                "pose": rng.normal(0, 0.3, 72).tolist(),
                "betas": rng.normal(0, 1, 10).tolist(),
                "gender": "neutral",
                "kp2d": kp.tolist(),
                "has_kp3d": bool(i % 2 == 0),
                "kp3d": kp3d.tolist(),
                "subject": f"S{i % 3}",
                "source_row": i,
            }
        )
    return rows


def write_manifest(root: Path, rows: list[dict], image_size: tuple[int, int] = (160, 120), seed: int = 0,
                   split: str = "train", dataset: str = "toy") -> tuple[Path, Path]:  # fmt: skip
    """Write the images of ``rows`` under ``root/raw`` and the manifest to ``root/manifests/DATASET/SPLIT``.

    Returns (manifest path, image root).
    """
    rng = np.random.default_rng(seed)
    image_root = root / "raw"
    (image_root / "images").mkdir(parents=True, exist_ok=True)
    for rel in sorted({r["image_path"] for r in rows}):
        img = rng.integers(0, 255, (image_size[1], image_size[0], 3), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (7, 7), 2)
        cv2.imwrite(str(image_root / rel), img)
    manifest = root / "manifests" / dataset / f"{split}.parquet"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), manifest)
    return manifest, image_root


def fake_flip_iuv(iuv: np.ndarray) -> np.ndarray:
    """Horizontal flip of the keypoint-disk renderer's maps: mirror, and I = joint + 1 through SPIN24_FLIP."""
    from pipeline.body.constants import SPIN24_FLIP

    out = iuv[:, ::-1].copy()
    part = out[..., 0]
    fg = part > 0
    part[fg] = np.asarray(SPIN24_FLIP, dtype=np.uint8)[part[fg] - 1] + 1
    return out


def build_shards(root: Path, n: int, *, shard_size: int = 4, crop_size: int = 96, seed: int = 0,
                 dataset: str = "toy", image_size: tuple[int, int] = (160, 120)) -> Path:  # fmt: skip
    """Manifest of ``n`` rows -> shards (in-process, keypoint-disk renderer); returns the split folder."""
    from pipeline.render_job import render_dataset
    from pipeline.shard_build import ShardParams

    rows = make_rows(n, seed=seed, image_size=image_size)
    for r in rows:
        r["dataset"] = dataset
    manifest, images = write_manifest(root / dataset, rows, image_size, seed=seed, dataset=dataset)
    params = ShardParams(dataset, "train", shard_size=shard_size, crop_size=crop_size, renderer=RENDERER)
    out = root / "shards" / dataset / "train"
    render_dataset(manifest, images, out, params, workers=0, progress=False)
    return out
