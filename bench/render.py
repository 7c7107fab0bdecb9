"""Rasterizer throughput: images/s at 56x56 and 224x224, batch 64, per backend, as JSON.

    python bench/render.py [--batch 64] [--repeats 5] [--sizes 56 224]

CPU figures use one thread (torch.set_num_threads(1); Warp's CPU kernels are single-threaded). The mesh is the
posed default body when pipeline.body is installed, otherwise a bumpy UV sphere of comparable size (~14k
vertices, ~27k faces) framed like a body in a crop. CUDA figures are added when torch sees a GPU (torch
backend) and Warp sees a CUDA device (warp backend). Ratios are warp / torch on the same device, this run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.render.cameras import WeakPerspectiveCamera  # noqa: E402
from pipeline.render.meshes import uv_sphere  # noqa: E402
from pipeline.render.rasterize import rasterize, warp_available  # noqa: E402


def bench_mesh(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(B,V,3) vertices in metres (camera axes: y down, facing the camera), faces, description."""
    gen = torch.Generator().manual_seed(seed)
    flip = torch.tensor([1.0, -1.0, -1.0])  # SMPL y-up/facing +z -> camera y-down/facing the camera
    try:
        from pipeline.body import load_body_model

        body = load_body_model("anny-smpl24")
        pose = torch.randn(batch, 72, generator=gen) * 0.2
        pose[:, :3] = 0
        with torch.no_grad():
            verts = body(pose=pose).vertices.float()
        verts = verts - verts.mean(1, keepdim=True)  # centred in the crop
        return verts * flip, body.faces, f"anny-smpl24 body, {verts.shape[1]} verts, {len(body.faces)} faces"
    except ImportError:
        verts, faces = uv_sphere(100, 138)
        scale = torch.tensor([0.35, 0.85, 0.25])
        bumps = 1 + 0.05 * torch.rand(batch, verts.shape[0], 1, generator=gen)
        return (
            verts * scale * bumps * flip,
            faces,
            f"synthetic sphere, {len(verts)} verts, {len(faces)} faces",
        )


def time_backend(
    screen: torch.Tensor, faces: torch.Tensor, size: int, backend: str, repeats: int
) -> dict[str, float]:
    """Images/s of rasterize(screen, faces, size, size, backend) over ``repeats`` runs: best and median by
    wall clock, and best by this process's CPU time (on one thread the fair figure when other processes share
    the machine; on CUDA only the wall clock means anything)."""
    sync = torch.cuda.synchronize if screen.is_cuda else (lambda: None)
    rasterize(screen, faces, size, size, backend=backend)  # warm-up (kernel compilation, allocator)
    sync()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        rasterize(screen, faces, size, size, backend=backend)
        sync()
        wall.append(screen.shape[0] / (time.perf_counter() - start))
        cpu.append(screen.shape[0] / max(time.process_time() - start_cpu, 1e-9))
    return {
        "best": round(max(wall), 1),
        "median": round(statistics.median(wall), 1),
        "cpu_time": round(max(cpu), 1),
    }


def warp_sees_cuda() -> bool:
    if not warp_available():
        return False
    from pipeline.render.raster_warp import init_warp

    init_warp()
    import warp as wp

    return wp.get_cuda_device_count() > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[56, 224])
    args = parser.parse_args()
    torch.set_num_threads(1)
    verts, faces, mesh = bench_mesh(args.batch)
    camera = WeakPerspectiveCamera(torch.tensor([[0.9, 0.0, 0.0]]).expand(args.batch, 3))
    devices = [("cpu", ["torch", "warp"] if warp_available() else ["torch"])]
    if torch.cuda.is_available():
        devices.append(("cuda", ["torch", "warp"] if warp_sees_cuda() else ["torch"]))
    result: dict = {
        "mesh": mesh,
        "batch": args.batch,
        "cpu_threads": 1,
        "images_per_s": {},
        "ratio_warp_torch": {},
    }
    for device, backends in devices:
        for size in args.sizes:
            screen = camera.to_screen(verts, size, size).to(device).contiguous()
            f = faces.to(device)
            rates = {b: time_backend(screen, f, size, b, args.repeats) for b in backends}
            for b, rate in rates.items():
                result["images_per_s"][f"{b}_{device}_{size}"] = rate
            if "warp" in rates:
                ratio = rates["warp"]["best"] / rates["torch"]["best"]
                result["ratio_warp_torch"][f"{device}_{size}"] = round(ratio, 2)
            covered = (rasterize(screen[:1], f, size, size).face_index >= 0).float().mean()
            result.setdefault("foreground_fraction", {})[f"{device}_{size}"] = round(float(covered), 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
