"""Benchmark of the render_iuv orchestration (crop, render, encode, tar) with the keypoint stand-in renderer.

Prints JSON: samples/s in one process (= per worker), with a Dask LocalCluster of 1 and 2 workers (start-up
included), and the ratio to a floor measured in the same run: a plain loop that only reads each image,
crops it and encodes the JPEG. ``--synth N`` instead renders N images of the built-in synthetic dataset
(stages.synthesize + stages.ingest, the dataset's train split) with the real SMPL->IUV renderer (the
default renderer) and reports samples/s per worker (torch and OpenCV at one thread in process).

    python -m bench.shards [--rows 512] [--crop-size 224] [--renderer module:function]
    python -m bench.shards --synth 400 --workers 0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline import crop as cropping
from pipeline import shards as fmt
from pipeline.render_job import render_dataset
from pipeline.renderers import DEFAULT_RENDERER
from pipeline.shard_build import ShardParams
from tests.fixtures_data.renderers import KEYPOINT_DISK
from tests.test_shards_helpers import make_rows, write_manifest


def floor_rate(rows: list[dict], image_root: Path, crop_size: int, margin: float) -> float:
    """Samples/s of read + crop + JPEG encode only (no rendering, no tar)."""
    t = time.perf_counter()
    for row in rows:
        img = cv2.imread(str(image_root / row["image_path"]))
        m = cropping.crop_transform(np.asarray(row["center"]), row["scale"], crop_size, margin)
        fmt.encode_jpg(cropping.warp(img, m, crop_size))
    return len(rows) / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--crop-size", type=int, default=224)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--renderer", default=KEYPOINT_DISK)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--synth", type=int, default=0, help="real renderer on N synthetic images")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.synth:
            import pyarrow.parquet as pq
            import torch

            from stages.ingest import main as ingest
            from stages.synthesize import main as synthesize

            torch.set_num_threads(1)
            with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON result
                synthesize(["--out", str(root / "synth"), "--n", str(args.synth), "--no-progress"])
                ingest(["--dataset", "synth", "--root", str(root), "--out", str(root / "manifests")])
            manifest, images = root / "manifests" / "synth" / "train.parquet", root / "synth"
            rows = pq.read_table(manifest).to_pylist()
            args.rows, args.renderer = len(rows), DEFAULT_RENDERER
        else:
            rows = make_rows(args.rows, image_size=(640, 480))
            manifest, images = write_manifest(root, rows, image_size=(640, 480))
        params = ShardParams("bench", "train", args.shard_size, args.crop_size, 1.2, args.renderer)
        floor = floor_rate(rows, images, args.crop_size, params.margin)
        result: dict = {"rows": args.rows, "crop_size": args.crop_size, "renderer": args.renderer,
                        "floor_read_crop_encode_per_s": round(floor, 1)}  # fmt: skip
        if args.synth:  # warm-up: load the body model and build the rasterizer kernel once
            render_dataset(
                manifest, images, root / "warm", params, workers=0, device=args.device, progress=False
            )
        for workers in args.workers:
            out = root / f"out{workers}"
            t, cpu = time.perf_counter(), time.process_time()
            summary = render_dataset(manifest, images, out, params, workers=workers, device=args.device,
                                     progress=False)  # fmt: skip
            wall = args.rows / (time.perf_counter() - t)
            rate = summary["rows_per_s_built"]
            name = "in_process" if workers == 0 else f"dask_{workers}_workers"
            result[f"{name}_per_s"] = rate
            result[f"{name}_per_s_per_worker"] = round(rate / max(workers, 1), 1)
            result[f"{name}_ratio_to_floor"] = round(rate / floor, 3)
            if (
                not workers
            ):  # samples per CPU-second of this process: per core, whatever else the machine runs
                result["in_process_per_cpu_s"] = round(args.rows / (time.process_time() - cpu), 1)
            if workers and (root / "out0").exists():
                result[f"{name}_per_s_incl_cluster_startup"] = round(wall, 1)
                ref = sorted((root / "out0").glob("*.tar"))
                same = all((out / p.name).read_bytes() == p.read_bytes() for p in ref)
                result[f"{name}_same_bytes_as_in_process"] = same
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
