"""Benchmark of the joint-centric RoI crop (pipeline.render.partial.crop_rois) against the naive crop that
repeats each map once per joint before sampling, measured in the same run. Prints one JSON object.

    python -m bench.roi_crop [--repeats 5] [--threads 1]

Cases: the network's feature maps (16 channels) and the ground-truth one-hot IUV maps (75 channels) the
partial-IUV supervision crops, at the demo's sizes (batch 16, 24 x 24 maps, 24 joints, 8 x 8 RoIs).
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import torch
import torch.nn.functional as F

from pipeline.render.partial import crop_rois, roi_thetas


def repeated_crop(maps: torch.Tensor, centers: torch.Tensor, scales: torch.Tensor, size: int) -> torch.Tensor:
    """The baseline: (B, C, H, W) repeated to (B*J, C, H, W), one RoI each -> (B, J, C, size, size)."""
    b, c = maps.shape[:2]
    j = centers.shape[1]
    grid = F.affine_grid(roi_thetas(centers, scales).reshape(b * j, 2, 3), [b * j, c, size, size], False)
    src = maps.unsqueeze(1).expand(b, j, *maps.shape[1:]).reshape(b * j, *maps.shape[1:])
    return F.grid_sample(src, grid, align_corners=False).reshape(b, j, c, size, size)


def best_ms(fn, repeats: int, backward: bool) -> float:
    """Smallest wall time of `repeats` calls of fn() (plus backward of its sum), milliseconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if backward:
            out.sum().backward()
        best = min(best, time.perf_counter() - start)
    return round(best * 1e3, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    out = {"torch": torch.__version__, "threads": args.threads}
    for name, channels in (("features_16ch", 16), ("gt_iuv_75ch", 75)):
        maps = torch.randn(16, channels, 24, 24, generator=gen, requires_grad=True)
        centers = torch.rand(16, 24, 2, generator=gen) - 0.5
        scales = torch.rand(16, 24, generator=gen) * 0.3 + 0.2
        row = {}
        for label, fn in (("crop_rois", crop_rois), ("repeated", repeated_crop)):
            call = functools.partial(fn, maps, centers, scales, 8)
            row[f"{label}_fwd_ms"] = best_ms(call, args.repeats, False)
            row[f"{label}_fwd_bwd_ms"] = best_ms(call, args.repeats, True)
        row["speedup_fwd_bwd"] = round(row["repeated_fwd_bwd_ms"] / row["crop_rois_fwd_bwd_ms"], 2)
        out[name] = row
    print(json.dumps(out))


if __name__ == "__main__":
    main()
