"""Benchmark the DaNet network: forward and forward+backward time per batch on CPU ("tiny", "paper"), and on
CUDA when available inference images/s at batch 1 and 64 (fp32, bf16 autocast, optionally torch.compile) and
training samples/s. Prints one JSON object. Ratios compare against the IUV estimator alone, measured in the
same run (the share of time the RoI pooling, streams and refinement add), and, for the paper preset (the
authors' TPAMI architecture), against a plain ResNet-18 classifier at 224 timed in the same run: the paper
reports 93 ms per image on a Titan Xp (AUTHORS_MS_PER_IMAGE), so the ratio carries that figure to this
machine.

    python -m bench.model [--repeats 3] [--no-paper] [--compile] [--threads N]

On a shared CPU, time with --threads 1: oversubscribed OpenMP threads make small ops ~10x slower.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from model.backbones import ResNet
from model.config import DaNetConfig, preset
from model.danet import DaNet
from model.losses import danet_losses

AUTHORS_MS_PER_IMAGE = {"ms": 93.0, "gpu": "Titan Xp"}  # DaNet's reported inference time per image


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def fake_targets(cfg: DaNetConfig, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
    s = cfg.feature_size
    labels = torch.randint(0, 25, (batch, s, s), device=device)
    onehot = torch.nn.functional.one_hot(labels, 25).permute(0, 3, 1, 2).float()
    iuv = torch.cat([onehot, onehot * torch.rand_like(onehot), onehot * torch.rand_like(onehot)], 1)
    return {
        "iuv": iuv,
        "pose": torch.randn(batch, 72, device=device) * 0.2,
        "betas": torch.randn(batch, 10, device=device),
        "joints2d_smpl": torch.rand(batch, 24, 3, device=device),
    }


def bench_config(name: str, device: torch.device, batches: dict[str, int], repeats: int) -> dict:
    cfg = preset(name)
    torch.manual_seed(0)
    model = DaNet(cfg).to(device)
    out: dict = {"params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    x = torch.randn(batches["forward"], 3, cfg.image_size, cfg.image_size, device=device)
    model.eval()
    with torch.no_grad():
        fwd = timed(lambda: model(x), device, repeats)
        iuv_only = timed(lambda: model.iuv(x), device, repeats)
    out.update(
        forward_batch=batches["forward"],
        forward_ms=round(fwd, 2),
        forward_ms_per_image=round(fwd / batches["forward"], 2),
        iuv_estimator_forward_ms=round(iuv_only, 2),
        forward_vs_iuv_estimator=round(fwd / iuv_only, 2),
    )
    if name == "paper":
        out.update(baseline(fwd / batches["forward"], device, repeats))
    model.train()
    xt = torch.randn(batches["train"], 3, cfg.image_size, cfg.image_size, device=device)
    targets = fake_targets(cfg, batches["train"], device)

    def step():
        model.zero_grad(set_to_none=True)
        danet_losses(model(xt, targets), targets, cfg)["total"].backward()

    train = timed(step, device, repeats)
    out.update(train_batch=batches["train"], forward_backward_ms=round(train, 2))
    return out


def baseline(ms_per_image: float, device: torch.device, repeats: int, batch: int = 1) -> dict:
    """A plain ResNet-18 classifier at 224 (batch 1), timed in the same run, and the paper preset's ratio to it,
    next to the authors' reported time."""
    net = ResNet(18, num_classes=1000).to(device).eval()
    x = torch.randn(batch, 3, 224, 224, device=device)
    with torch.no_grad():
        ms = timed(lambda: net(x), device, repeats) / batch
    return {
        "resnet18_ms_per_image": round(ms, 2),
        "paper_vs_resnet18": round(ms_per_image / ms, 2),
        "authors_reported_ms_per_image": AUTHORS_MS_PER_IMAGE,
    }


def bench_cuda(repeats: int, compile_model: bool) -> dict:
    device = torch.device("cuda")
    cfg = preset("paper")
    torch.manual_seed(0)
    model = DaNet(cfg).to(device).eval()
    res: dict = {
        "device_name": torch.cuda.get_device_name(),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
    }
    runners = {"fp32": model}
    if compile_model:
        runners["compiled"] = torch.compile(model)
    for label, net in runners.items():
        for dtype_name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            for batch in (1, 64):
                x = torch.randn(batch, 3, 224, 224, device=device)

                def run(net=net, x=x, dtype=dtype):
                    with (
                        torch.no_grad(),
                        torch.autocast("cuda", dtype or torch.float32, enabled=dtype is not None),
                    ):
                        net(x)

                ms = timed(run, device, repeats * 5, warmup=3)
                res[f"{label}_{dtype_name}_b{batch}_ms"] = round(ms, 3)
                res[f"{label}_{dtype_name}_b{batch}_images_per_s"] = round(batch * 1e3 / ms, 1)
    res.update(baseline(res["fp32_fp32_b1_ms"], device, repeats * 5))
    model.train()
    batch = 32
    x = torch.randn(batch, 3, 224, 224, device=device)
    targets = fake_targets(cfg, batch, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    for dtype_name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):

        def step(dtype=dtype):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype or torch.float32, enabled=dtype is not None):
                loss = danet_losses(model(x, targets), targets, cfg)["total"]
            loss.backward()
            opt.step()

        ms = timed(step, device, repeats * 3, warmup=2)
        res[f"train_{dtype_name}_b{batch}_samples_per_s"] = round(batch * 1e3 / ms, 1)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-paper", action="store_true", help="skip the paper config on CPU")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile on CUDA")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict = {
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "cpu": {"tiny": bench_config("tiny", torch.device("cpu"), {"forward": 8, "train": 8}, args.repeats)},
    }
    if not args.no_paper:
        result["cpu"]["paper"] = bench_config(
            "paper", torch.device("cpu"), {"forward": 1, "train": 2}, args.repeats
        )
    if torch.cuda.is_available():
        result["cuda"] = bench_cuda(args.repeats, args.compile)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
