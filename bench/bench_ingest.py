"""Ingest throughput on a synthetic SPIN-style npz (H36M-like names), printed as JSON.

Baselines measured in the same run: (1) np.load + a plain pyarrow table of the raw arrays (the floor any
ingest pays), (2) reading image sizes with cv2.imread vs our header parser (why images.py exists).

    PYTHONPATH=. python bench/bench_ingest.py [--rows 50000] [--images 500]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa

from pipeline.datasets.images import image_size
from pipeline.datasets.ingest import ingest_dataset
from pipeline.datasets.sources import IngestSplit, Source


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--images", type=int, default=500)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        names = [f"images/S1_Walking_1.54138969_{i % args.images:06d}.jpg" for i in range(args.rows)]
        img = rng.integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
        for name in sorted(set(names)):
            (raw / "h36m" / name).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(raw / "h36m" / name), img)
        npz = raw / "h36m" / "ann.npz"
        part = np.concatenate([rng.uniform(100, 900, (args.rows, 24, 2)), np.ones((args.rows, 24, 1))], -1)
        arrays = {
            "imgname": np.array(names),
            "center": np.full((args.rows, 2), 500.0),
            "scale": np.full(args.rows, 4.0),
            "part": part,
            "S": rng.normal(size=(args.rows, 24, 4)),
            "pose": rng.normal(size=(args.rows, 72)).astype(np.float32),
            "shape": rng.normal(size=(args.rows, 10)).astype(np.float32),
        }
        np.savez(npz, **arrays)
        source = Source(
            "h36m", "bench", None, "-", None, False, (), (IngestSplit("b", "spin_npz", "h36m/ann.npz"),)
        )

        def baseline() -> None:
            with np.load(npz) as d:
                pa.table({k: pa.array(list(d[k].reshape(len(d[k]), -1))) for k in d.files})

        t_base = _timed(baseline)
        t_ingest = _timed(lambda: ingest_dataset(source, raw, Path(tmp) / "m"))
        paths = [raw / "h36m" / n for n in sorted(set(names))]
        t_header = _timed(lambda: [image_size(p) for p in paths])
        t_cv2 = _timed(lambda: [cv2.imread(str(p)).shape for p in paths])
    print(
        json.dumps(
            {
                "rows": args.rows,
                "ingest_rows_per_s": round(args.rows / t_ingest),
                "baseline_load_to_arrow_rows_per_s": round(args.rows / t_base),
                "ingest_time_over_baseline": round(t_ingest / t_base, 2),
                "image_size_header_per_s": round(len(paths) / t_header),
                "image_size_cv2_imread_per_s": round(len(paths) / t_cv2),
                "header_speedup_vs_cv2": round(t_cv2 / t_header, 1),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
