"""Render the built-in synthetic dataset: the open body model in varied poses, shapes, cameras and scenes.

    python -m stages.synthesize --out data/raw/synth --n 2000 --seed 0

Writes OUT/images/SPLIT/NNNNNN.jpg and OUT/SPLIT.npz (train and val) in SPIN's annotation format (imgname,
center, scale, part, S, pose, shape, has_smpl, gender, plus focal_length and cam_t), so that
`python -m stages.ingest --dataset synth` reads it through the same code as real data. OUT/mean_params.npz
holds the training split's mean SMPL parameters in the layout of SPIN's smpl_mean_params.npz. Deterministic per
seed: batch k is rendered from the seed sequence (seed, k), so the same arguments give the same bytes.
With --densepose it also writes OUT/densepose_SPLIT.json, DensePose-COCO annotations sampled from the
people's rendered IUV maps (pipeline/synth/densepose.py; the synth_dp source ingests them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.body import load_body_model, load_dense_parts
from pipeline.files import atomic_output, atomic_write_bytes
from pipeline.synth.mean_params import write_mean_params
from pipeline.synth.scene import render_scene_batch
from stages.cli import DVC_TRACKED, note_tracked_out, stage_parser

DEFAULT_OUT = Path("data/raw/synth")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = stage_parser("synthesize", __doc__)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="dataset folder to write " + DVC_TRACKED
    )
    parser.add_argument("--n", type=int, default=2000, help="number of images (one person each)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of images in the val split")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=32, help="images rendered per batch")
    parser.add_argument("--backend", default="auto", choices=("auto", "warp", "torch"), help="rasterizer")
    parser.add_argument("--quality", type=int, default=92, help="JPEG quality")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--densepose",
        action="store_true",
        help="also write OUT/densepose_SPLIT.json: DensePose-COCO annotations sampled from the rendered IUV "
        "maps (ingest them as the synth_dp dataset); off by default, the other outputs are the same either way",
    )
    args = parser.parse_args(argv)
    if args.n < 2 or not 0 < args.val_fraction < 1:
        parser.error("--n must be >= 2 and --val-fraction in (0, 1)")
    note_tracked_out("synthesize", args.out, DEFAULT_OUT)
    return args


def write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    """Encodes an RGB image as JPEG and writes it atomically (temporary name, then rename)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"{path}: JPEG encoding failed")
    atomic_write_bytes(path, data.tobytes())


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


class DensePoseWriter:
    """Collects DensePose-COCO annotations per split (pipeline.synth.densepose) from each rendered batch.

    The IUV maps are rendered with the batch's own camera and the points drawn from a generator of their own
    (seed sequence (seed, batch, 1)), so the images and npz files do not change with the flag."""

    def __init__(self, body, parts, args: argparse.Namespace) -> None:
        from pipeline.render import IUVRenderer

        self.body, self.args = body, args
        self.renderer = IUVRenderer(parts, backend=args.backend)
        self.images: dict[str, list[dict]] = {"train": [], "val": []}
        self.annotations: dict[str, list[dict]] = {"train": [], "val": []}

    def add_batch(self, scene, batch_index: int, splits: list[str], start: int) -> None:
        import torch

        from pipeline.render.cameras import PerspectiveCamera
        from pipeline.synth.densepose import densepose_annotation

        ann, size, count = scene.annotations, self.args.size, len(splits)
        with torch.no_grad():
            posed = self.body(betas=torch.as_tensor(ann["shape"]), pose=torch.as_tensor(ann["pose"]))
        intrinsics = np.tile(np.eye(3), (count, 1, 1))
        intrinsics[:, 0, 0] = intrinsics[:, 1, 1] = ann["focal_length"]
        intrinsics[:, :2, 2] = size / 2
        camera = PerspectiveCamera(
            K=torch.as_tensor(intrinsics, dtype=torch.float32),
            R=torch.as_tensor(np.tile(np.eye(3), (count, 1, 1)), dtype=torch.float32),
            t=torch.as_tensor(ann["cam_t"], dtype=torch.float32),
        )
        iuv = self.renderer.render_encoded(posed.vertices, camera, size, size).cpu().numpy()
        rng = np.random.default_rng(np.random.SeedSequence([self.args.seed, batch_index, 1]))
        for k, split in enumerate(splits):
            index = start + k
            dp = densepose_annotation(iuv[k], ann["part"][k], rng)
            self.images[split].append(
                {
                    "id": index + 1,
                    "file_name": f"images/{split}/{index:06d}.jpg",
                    "width": size,
                    "height": size,
                }
            )
            if dp is not None:
                self.annotations[split].append({"image_id": index + 1, **dp})

    def write(self, out: Path) -> None:
        from pipeline.synth.densepose import coco_document

        for split in self.images:
            document = json.dumps(coco_document(self.images[split], self.annotations[split]))
            atomic_write_bytes(out / f"densepose_{split}.json", document.encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    body = load_body_model("anny-smpl24")
    parts = load_dense_parts("anny-smpl24")
    num_val = max(1, round(args.n * args.val_fraction))
    split_of = ["train"] * (args.n - num_val) + ["val"] * num_val
    for split in ("train", "val"):
        (args.out / "images" / split).mkdir(parents=True, exist_ok=True)

    collected: dict[str, dict[str, list]] = {"train": {}, "val": {}}
    densepose = DensePoseWriter(body, parts, args) if args.densepose else None
    templates: dict[str, int] = {}
    started = time.perf_counter()
    bar = tqdm(total=args.n, unit="img", disable=args.no_progress, desc="synthesize")
    for batch_index, start in enumerate(range(0, args.n, args.batch_size)):
        count = min(args.batch_size, args.n - start)
        seed = int(np.random.SeedSequence([args.seed, batch_index]).generate_state(1)[0])
        scene = render_scene_batch(body, parts, seed, count, size=args.size, backend=args.backend)
        for offset in range(count):
            index = start + offset
            split = split_of[index]
            imgname = f"images/{split}/{index:06d}.jpg"
            write_jpeg(args.out / imgname, scene.images[offset], args.quality)
            rows = collected[split]
            rows.setdefault("imgname", []).append(imgname)
            rows.setdefault("gender", []).append("n")
            for key, value in scene.annotations.items():
                rows.setdefault(key, []).append(value[offset])
            templates[scene.templates[offset]] = templates.get(scene.templates[offset], 0) + 1
        if densepose is not None:
            densepose.add_batch(scene, batch_index, [split_of[start + k] for k in range(count)], start)
        bar.update(count)
    bar.close()
    for split, rows in collected.items():
        write_npz(args.out / f"{split}.npz", {key: np.stack(values) for key, values in rows.items()})
    train = collected["train"]
    write_mean_params(args.out / "mean_params.npz", np.stack(train["pose"]), np.stack(train["shape"]))
    if densepose is not None:
        densepose.write(args.out)
    seconds = time.perf_counter() - started
    summary = {
        "out": str(args.out),
        "images": args.n,
        "train": len(collected["train"].get("imgname", [])),
        "val": len(collected["val"].get("imgname", [])),
        "seconds": round(seconds, 2),
        "images_per_s": round(args.n / seconds, 1),
        "pose_templates": dict(sorted(templates.items())),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
