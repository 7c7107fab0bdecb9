"""Benchmark of the synthetic-dataset renderer (pipeline.synth.scene) on one core, with a breakdown.

Prints JSON: images/s of :func:`render_scene_batch` at ``--size`` (best of ``--repeats``), the same plus
the JPEG encode the stage does, and the seconds per image of each step (pose sampling + body model,
backgrounds, rasterization, shading), measured on the same batch. The baseline measured in the same run
is the rasterizer alone (the part no shading change can remove): ``ratio_to_rasterize_only``.

    python -m bench.synthesize [--size 224] [--batch-size 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import cv2
import numpy as np
import torch

from pipeline.body import load_body_model, load_dense_parts
from pipeline.render.cameras import PerspectiveCamera
from pipeline.render.rasterize import rasterize
from pipeline.render.shade import shade
from pipeline.synth import scene as S


def best_of(fn, repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls of ``fn`` (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    body, parts = load_body_model("anny-smpl24"), load_dense_parts("anny-smpl24")
    n, size = args.batch_size, args.size
    S.render_scene_batch(body, parts, 0, n, size=size, backend=args.backend)  # warm-up (kernel build)

    def whole() -> None:
        S.render_scene_batch(body, parts, 1, n, size=size, backend=args.backend)

    def whole_and_encode() -> None:
        batch = S.render_scene_batch(body, parts, 1, n, size=size, backend=args.backend)
        for image in batch.images:
            cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])

    # the steps, on one batch drawn like render_scene_batch draws it
    rng = np.random.default_rng(1)
    pose, betas, _ = S.sample_smpl(rng, n)

    def body_forward():
        with torch.no_grad():
            return body(betas=torch.as_tensor(betas, dtype=torch.float32),
                        pose=torch.as_tensor(pose, dtype=torch.float32))  # fmt: skip

    out = body_forward()
    vertices = out.vertices.double().numpy()
    focal, translation = S.place_in_image(rng, vertices, out.joints.numpy(), size)
    eye = np.tile(np.eye(3), (n, 1, 1))
    k = eye.copy()
    k[:, 0, 0] = k[:, 1, 1] = focal
    k[:, :2, 2] = size / 2
    camera = PerspectiveCamera(K=torch.as_tensor(k, dtype=torch.float32), R=torch.as_tensor(eye, dtype=torch.float32),
                               t=torch.as_tensor(translation, dtype=torch.float32))  # fmt: skip
    verts = torch.as_tensor(vertices[:, parts.render_to_body], dtype=torch.float32)
    faces = torch.as_tensor(parts.faces)
    screen = camera.to_screen(verts, size, size)
    frags = rasterize(screen, faces, size, size, backend=args.backend)
    colours = torch.as_tensor(S.clothing_colours(rng, n)[:, parts.face_part], dtype=torch.float32)
    backgrounds = torch.as_tensor(np.stack([S.random_background(rng, size, size) for _ in range(n)]))
    cam_verts = camera.to_camera(verts)
    steps = {
        "body_model": best_of(body_forward, args.repeats),
        "backgrounds": best_of(
            lambda: [S.random_background(rng, size, size) for _ in range(n)], args.repeats
        ),
        "rasterize": best_of(
            lambda: rasterize(screen, faces, size, size, backend=args.backend), args.repeats
        ),
        "shade": best_of(
            lambda: shade(frags, cam_verts, faces, face_colors=colours, background=backgrounds, smooth=False),
            args.repeats,
        ),  # fmt: skip
    }
    total = best_of(whole, args.repeats)
    total_enc = best_of(whole_and_encode, args.repeats)
    result = {
        "size": size,
        "batch_size": n,
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "images_per_s": round(n / total, 1),
        "images_per_s_with_jpeg_encode": round(n / total_enc, 1),
        "ms_per_image": {name: round(1e3 * t / n, 3) for name, t in steps.items()},
        "ms_per_image_total": round(1e3 * total / n, 3),
        "ratio_to_rasterize_only": round(steps["rasterize"] / total, 3),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
