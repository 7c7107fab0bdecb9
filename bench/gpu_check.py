"""One-shot GPU check: every CUDA path of the project in one run (< 5 minutes on one GPU), one JSON.

    python -m bench.gpu_check [--out gpu_check.json]          # on a machine with torch + CUDA
    python -m bench.gpu_check --dry-run-cpu                   # the same code on CPU at toy sizes

Sections (each reports its own error instead of ending the run; exit 1 if any failed):
- ``raster``: the pure-torch rasterizer on CUDA against CPU on the same meshes (share of pixels with the
  same visible face, 56 and 224 pixels, batch 64) and images/s; Warp's kernel on CUDA too when
  warp-lang is importable and sees the GPU (it may be absent: then ``"warp": "not importable"``);
- ``model``: the paper preset's inference in fp32 and bf16 autocast at batch 1 and 64 (ms, images/s) and
  training samples/s (``bench.model.bench_cuda``);
- ``train``: 50 steps of the tiny preset through ``model.training.loop.Trainer`` on CUDA (bf16 autocast, as
  ``run.amp`` does) on small keypoint-disk shards: steps/s, first and last loss, non-finite skips;
- ``predict``: ``stages.predict --device cuda`` with that run's model on a few images, and the largest
  difference of its pose parameters from ``--device cpu`` on the same images;
- ``targets``: the issue's goals (render >= 50,000 images/s at 56 px and >= 10,000 at 224 px on CUDA;
  paper-preset inference <= 5 ms at batch 1 and >= 2,000 images/s batched), each true or false.

Without CUDA it prints ``{"cuda": false, ...}`` and exits 0 (nothing to check), so it is safe in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/gpu_check.py` as well as `python -m bench.gpu_check`
    sys.path.insert(0, str(REPO))

RENDER_TARGETS = {56: 50_000.0, 224: 10_000.0}  # images/s on CUDA
INFERENCE_B1_MS, INFERENCE_BATCHED_PER_S = 5.0, 2_000.0


def _section(result: dict, name: str, fn, *args) -> None:
    start = time.perf_counter()
    try:
        result[name] = fn(*args)
    except Exception as err:  # noqa: BLE001 - one broken path must not hide the others' figures
        result[name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-2000:]}
    result[name]["seconds"] = round(time.perf_counter() - start, 1)


def check_raster(device: str, batch: int, repeats: int) -> dict:
    from bench.render import bench_mesh, time_backend, warp_sees_cuda
    from pipeline.render.cameras import WeakPerspectiveCamera
    from pipeline.render.rasterize import rasterize

    verts, faces, mesh = bench_mesh(batch)
    camera = WeakPerspectiveCamera(torch.tensor([[0.9, 0.0, 0.0]]).expand(batch, 3))
    out: dict = {"mesh": mesh, "batch": batch, "images_per_s": {}, "same_face_vs_cpu": {}}
    has_warp = device == "cuda" and warp_sees_cuda()
    out["warp"] = "cuda" if has_warp else "not importable or no CUDA device for warp"
    for size in (56, 224):
        screen_cpu = camera.to_screen(verts, size, size).contiguous()
        screen = screen_cpu.to(device)
        reference = rasterize(screen_cpu, faces, size, size, backend="torch").face_index
        backends = ["torch", "warp"] if has_warp else ["torch"]
        for backend in backends:
            got = rasterize(screen, faces.to(device), size, size, backend=backend).face_index.cpu()
            foreground = (got >= 0) | (reference >= 0)
            same = (got == reference)[foreground].float().mean()
            out["same_face_vs_cpu"][f"{backend}_{size}"] = round(float(same), 5)
            rate = time_backend(screen, faces.to(device), size, backend, repeats)
            out["images_per_s"][f"{backend}_{device}_{size}"] = rate["best"]
    return out


def check_model(device: str, repeats: int) -> dict:
    if device == "cuda":
        from bench.model import bench_cuda

        return bench_cuda(repeats, compile_model=False)
    from bench.model import bench_config  # dry run: the benchmark's code path, tiny preset on CPU

    return {"tiny_cpu": bench_config("tiny", torch.device("cpu"), {"forward": 1, "train": 2}, 1)}


def _train_config(shards: Path, steps: int, device: str, batch: int, workers: int):
    from model.training.config import load_train_config

    return load_train_config(
        REPO / "configs" / "train" / "demo.yaml",
        [
            f"data.train=[{{path: {shards}}}]",
            "data.val=null",
            f"data.batch_size={batch}",
            f"data.num_workers={workers}",
            "data.shuffle_buffer=32",
            "model.init.checkpoint=null",
            "model.overrides.mean_params=null",
            "optim.iuv_only_steps=5",
            f"run.steps={steps}",
            f"run.checkpoint_every={steps}",
            "run.log_every=5",
            f"run.device={device}",
            "run.amp=true",
            "run.threads=null",
        ],
    )


def check_train(device: str, steps: int, work: Path) -> dict:
    """``steps`` training steps (batch 16, 2 loader workers; a dry run of 2 steps: batch 4, no workers)."""
    from model.training.loop import Trainer
    from tests.test_shards_helpers import build_shards

    dry = steps < 5
    shards = build_shards(
        work / "data", 24 if dry else 96, shard_size=32, crop_size=128, image_size=(320, 240)
    )
    config = _train_config(shards, steps, device, batch=4 if dry else 16, workers=0 if dry else 2)
    trainer = Trainer(config, work / "run")
    start = time.perf_counter()
    summary = trainer.run(progress=False)
    seconds = time.perf_counter() - start
    return {
        "steps": summary["steps"],
        "steps_per_s": round(summary["steps"] / seconds, 2),
        "first_loss": summary["first_loss"],
        "final_loss": summary["final_loss"],
        "nonfinite_skipped": summary["nonfinite_skipped"],
        "amp_bf16": device == "cuda",
        "checkpoint": str(work / "run" / "model.pt"),
    }


def check_predict(device: str, work: Path) -> dict:
    from stages.predict import main as predict

    checkpoint = work / "run" / "model.pt"
    if not checkpoint.is_file():
        raise RuntimeError("no model from the train section")
    images = sorted((work / "data" / "toy" / "raw" / "images").glob("*.jpg"))[:4]
    out: dict = {"images": len(images)}
    params = {}
    for where in dict.fromkeys([device, "cpu"]):
        folder = work / f"predict_{where}"
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()) as printed:  # its JSON summary goes into ours
            code = predict([*map(str, images), "--checkpoint", str(checkpoint), "--out", str(folder),
                            "--device", where, "--no-progress"])  # fmt: skip
        out[f"exit_code_{where}"] = code
        out[f"summary_{where}"] = json.loads(printed.getvalue().strip().splitlines()[-1])
        out[f"seconds_{where}"] = round(time.perf_counter() - start, 2)
        params[where] = {
            p.relative_to(folder).as_posix(): json.loads(p.read_text()) for p in folder.rglob("*_params.json")
        }
    out["persons"] = len(params[device])
    if device != "cpu" and params[device].keys() == params["cpu"].keys():
        diffs = [
            max(abs(a - b) for a, b in zip(params[device][k]["pose"], params["cpu"][k]["pose"], strict=True))
            for k in params[device]
            if "pose" in params[device][k]
        ]
        out["max_pose_diff_cuda_vs_cpu"] = max(diffs) if diffs else None
    return out


def targets(result: dict, device: str) -> dict:
    out: dict = {}
    rates = result.get("raster", {}).get("images_per_s", {})
    for size, goal in RENDER_TARGETS.items():
        best = max((v for k, v in rates.items() if k.endswith(f"_{device}_{size}")), default=None)
        out[f"render_{size}_at_least_{int(goal)}_per_s"] = None if best is None else best >= goal
    model = result.get("model", {})
    if "fp32_bf16_b1_ms" in model:
        b1 = min(model["fp32_fp32_b1_ms"], model["fp32_bf16_b1_ms"])
        batched = max(model["fp32_fp32_b64_images_per_s"], model["fp32_bf16_b64_images_per_s"])
        out["inference_b1_at_most_5_ms"] = b1 <= INFERENCE_B1_MS
        out["inference_batched_at_least_2000_per_s"] = batched >= INFERENCE_BATCHED_PER_S
    return out


def run_all(device: str, work: Path, dry: bool) -> dict:
    result: dict = {"cuda": device == "cuda", "torch": torch.__version__, "dry_run_cpu": dry}
    if device == "cuda":
        result["device_name"] = torch.cuda.get_device_name()
    _section(result, "raster", check_raster, device, 2 if dry else 64, 1 if dry else 5)
    _section(result, "model", check_model, device, 1 if dry else 3)
    _section(result, "train", check_train, device, 2 if dry else 50, work)
    _section(result, "predict", check_predict, device, work)
    result["targets"] = "not measured on a CPU dry run" if dry else targets(result, device)
    result["failed_sections"] = [k for k, v in result.items() if isinstance(v, dict) and "error" in v]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--dry-run-cpu", action="store_true", help="run every section on CPU at toy sizes")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.dry_run_cpu:
        result = {"cuda": False, "torch": torch.__version__, "skipped": "torch sees no CUDA device"}
    else:
        with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
            result = run_all("cpu" if args.dry_run_cpu else "cuda", Path(tmp), args.dry_run_cpu)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if result.get("failed_sections") else 0


if __name__ == "__main__":
    sys.exit(main())
