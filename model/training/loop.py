"""The streaming training loop: shards -> loader -> DaNet -> losses -> Adam, with exact resume.

Data order is a pure function of (seed, segment), a segment being the steps between two checkpoints: the
loader is rebuilt at every checkpoint boundary with that segment's seed. A run resumed from a checkpoint
therefore sees the same batches, model randomness (restored RNG states) and schedule as one that never
stopped. One process, or several under torchrun (DDP, see model.training.distributed; one data stream per
rank and loader worker, see pipeline.loader).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import model.training.distributed as ddp
from model.danet import DaNet
from model.losses import INTER_TERMS, danet_losses, inter_losses, weighted_total
from model.training.checkpoint import (
    CorruptCheckpointError,
    load_checkpoint,
    previous_path,
    rng_state,
    save_checkpoint,
    set_rng_state,
    temp_path,
)
from model.training.config import TrainConfig, config_as_dict
from model.training.curves import write_curves
from model.training.init import (
    freeze_modules,
    keep_frozen_in_eval,
    load_module_weights,
    load_pretrained_backbones,
)
from model.training.provenance import training_provenance
from model.training.schedule import build_scheduler
from model.training.targets import batch_to_inputs
from model.training.validation import record_validation
from pipeline.augment import AugmentConfig
from pipeline.augment_torch import device_augment
from pipeline.loader import Source, make_dataset, make_loader

log = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.pt"
FINAL_MODEL = "model.pt"
LOG_FILE = "train_log.jsonl"
SUMMARY_FILE = "train_metrics.json"
CURVE_FILE = "train_curve.json"  # [{step, loss, lr}, ...] for `dvc plots`


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. repeated non-finite losses); the last good checkpoint is kept."""


def resolve_device(name: str, dist: ddp.Distributed) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("run.device=cuda but no CUDA device is available")
        return torch.device("cuda", dist.local_rank)
    return torch.device(name)


def loader_augment_config(cfg: TrainConfig) -> AugmentConfig:
    """The loader's augmentation: the training ranges, or the plain centre crop with data.augment off."""
    return AugmentConfig(enabled=cfg.data.augment)


def segment_batches(cfg: TrainConfig, segment: int) -> Iterator[dict]:
    """An endless batch stream for one checkpoint segment, seeded by (run seed, segment)."""
    seed = int(np.random.SeedSequence([cfg.run.seed, segment]).generate_state(1)[0])
    sources = [Source(s.path, s.weight) for s in cfg.data.train]
    for source in sources:
        if not (Path(source.folder) / "index.json").is_file():
            raise TrainingError(f"no shards at {source.folder} (index.json missing): run render_iuv first")
    dataset = make_dataset(
        sources,
        batch_size=cfg.data.batch_size,
        augment=loader_augment_config(cfg),
        shuffle_buffer=cfg.data.shuffle_buffer,
        resampled=True,
        seed=seed,
        onehot=False,
        augment_on=cfg.data.augment_on,  # "device": the warps run in Trainer.train_step (device_augment)
    )
    yield from make_loader(dataset, num_workers=cfg.data.num_workers)


def remove_leftover_temp_files(folder: Path) -> list[Path]:
    """Deletes the temporary files (`.NAME.tmp`: checkpoints, the log) that a killed run left in `folder`."""
    removed = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for leftover in removed:
        leftover.unlink()
        log.info("removed %s, left by an interrupted checkpoint write", leftover)
    return removed


def trim_log(log_path: Path, step: int) -> int:
    """Drops the records of `log_path` (JSON lines) after `step`, and a torn last line, atomically: a run
    resumed at `step` logs those steps again. Returns the number of records dropped."""
    kept, dropped = [], 0
    for line in log_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the kill
            dropped += 1
            continue
        if int(record.get("step", 0)) > step:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        tmp = temp_path(log_path)
        tmp.write_text("".join(f"{line}\n" for line in kept))
        os.replace(tmp, log_path)
        log.info("%s: dropped %d record(s) after step %d (resumed there)", log_path, dropped, step)
    return dropped


BATCHNORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)


def saved_batchnorm_statistics(network: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(buffer, copy) of every BatchNorm running statistic. A training-mode forward updates them before the
    loss is known, so a skipped step puts them back: a batch with non-finite activations would otherwise
    leave NaN statistics behind, and the saved network would predict NaN in evaluation."""
    return [
        (buffer, buffer.detach().clone())
        for module in network.modules()
        if isinstance(module, BATCHNORMS)
        for buffer in (module.running_mean, module.running_var, module.num_batches_tracked)
        if buffer is not None
    ]


class Trainer:
    """Owns the network, optimiser, schedule and data stream of one run writing into `out_dir`."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, body=None, body_name: str = "anny-smpl24"):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.dist = ddp.init_distributed()
        self.device = resolve_device(cfg.run.device, self.dist)
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        torch.manual_seed(ddp.rank_seed(cfg.run.seed, self.dist))
        np.random.seed(ddp.rank_seed(cfg.run.seed, self.dist) % 2**32)  # noqa: NPY002 - third-party users
        self.inject_nonfinite = ddp.NonfiniteInjector.from_env(os.environ)  # test hook; empty unless set
        if body is None:
            from pipeline.body import load_body_model

            body = load_body_model(body_name)
        self.body_name = body_name
        self.body = body.to(self.device)
        self.net_cfg = cfg.danet_config()
        self.network = DaNet(self.net_cfg, self.body)
        init = cfg.model.init
        load_pretrained_backbones(self.network, init.pretrained)
        if init.checkpoint:
            load_module_weights(self.network, init.checkpoint, init.modules)
        self.frozen = cfg.model.frozen_modules
        freeze_modules(self.network, self.frozen)
        self.network.to(self.device)
        self.model = self.network
        if self.dist.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.network, device_ids=ids, find_unused_parameters=True
            )
        params = [p for p in self.network.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.run.steps)
        self.step = 0
        self.nonfinite_total = 0
        self.labels_dropped = 0  # samples whose non-finite labels were dropped (model.training.targets)
        self.resumed_from: Path | None = None

    # -- checkpoints -----------------------------------------------------------------------------------------

    def checkpoint_payload(self) -> dict:
        return {
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "rng": rng_state(),
            "rng_ranks": getattr(self, "_rng_ranks", None),  # every rank's states under DDP (see save)
            "config": config_as_dict(self.cfg),
            "body_model": self.body_name,
            "nonfinite_total": self.nonfinite_total,
            "labels_dropped": self.labels_dropped,
            "provenance": training_provenance(config_as_dict(self.cfg), self.body_name, self.step),
        }

    def save(self, name: str = LAST_CHECKPOINT) -> Path | None:
        """Rank 0 writes `name`; under DDP every rank must call this (it gathers each rank's RNG state)."""
        self._rng_ranks = ddp.gather_objects(rng_state(), self.dist) if self.dist.active else None
        if not self.dist.is_main:
            return None
        keep = name == LAST_CHECKPOINT and self.cfg.run.keep_previous
        return save_checkpoint(self.out_dir / name, self.checkpoint_payload(), keep_previous=keep)

    def resume(self, path: str | Path | None = None) -> bool:
        """Restores model, optimiser, schedule, step and RNG from `path` (default: out_dir/last.pt).

        A damaged `path` (truncated, or tensors not matching their digest) falls back to the previous
        checkpoint kept next to it (run.keep_previous); the damaged file is moved aside to `*.damaged` so
        that the next save keeps the good one. Without a good one it is a CorruptCheckpointError naming
        the files. Returns False when there is nothing to resume from."""
        path = Path(path) if path else self.out_dir / LAST_CHECKPOINT
        candidates = [p for p in (path, previous_path(path)) if p.is_file()]
        if not candidates:
            return False
        damaged: list[str] = []
        for candidate in candidates:
            try:
                payload = load_checkpoint(candidate, map_location=self.device)
            except CorruptCheckpointError as err:
                damaged.append(str(err))
                continue
            break
        else:
            kept = "" if len(candidates) > 1 else f" (no earlier checkpoint {previous_path(path).name} kept)"
            raise CorruptCheckpointError("; ".join(damaged) + kept)
        if candidate != path:
            if path.is_file() and self.dist.is_main:
                os.replace(path, path.with_name(path.name + ".damaged"))
            log.warning("%s; resuming from the previous checkpoint %s instead", damaged[0], candidate)
        self.network.load_state_dict(payload["model"])
        payload["rng"] = ddp.rank_rng_state(payload, self.dist)  # this rank's own states under DDP
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.step = int(payload["step"])
        self.nonfinite_total = int(payload.get("nonfinite_total", 0))
        self.labels_dropped = int(payload.get("labels_dropped", 0))
        set_rng_state(payload["rng"])
        self.resumed_from = candidate
        log.info("resumed from %s at step %d", candidate, self.step)
        return True

    # -- one step --------------------------------------------------------------------------------------------

    def train_step(self, batch: dict) -> dict[str, float] | None:
        """One optimiser step; returns the loss terms, or None when the loss was not finite (step skipped)."""
        cfg = self.cfg
        self.model.train()
        keep_frozen_in_eval(self.network, self.frozen)
        if cfg.data.augment_on == "device":  # the loader left the image warp and colour to this device
            batch = device_augment(batch, out_size=loader_augment_config(cfg).out_size, device=self.device)
        image, targets = batch_to_inputs(
            batch, self.net_cfg.image_size, self.net_cfg.feature_size, self.body, self.device
        )
        self.labels_dropped += targets["labels_dropped"]
        use_amp = cfg.run.amp and self.device.type == "cuda"
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else nullcontext()
        iuv_phase = self.step < cfg.optim.iuv_only_steps
        statistics = saved_batchnorm_statistics(self.network)
        with autocast:
            pred = self.model(image, targets, iuv_only=iuv_phase)
            if iuv_phase:
                terms = inter_losses(pred, targets, self.net_cfg.loss)
            else:
                terms = danet_losses(pred, targets, self.net_cfg, self.body)
            total = weighted_total(terms, self.net_cfg, INTER_TERMS if iuv_phase else None)
        if self.inject_nonfinite.fires(self.step, self.dist.rank):
            total = total * float("nan")
        finite = ddp.all_finite(total.detach(), self.dist)  # all ranks skip together, or none does
        self.optimizer.zero_grad(set_to_none=True)
        if not finite:
            with torch.no_grad():
                for buffer, saved in statistics:
                    buffer.copy_(saved)
            return None
        total.backward()
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        out = {k: float(v.detach()) for k, v in terms.items() if k != "total"}
        out["total"] = float(total.detach())
        return out

    # -- the run ---------------------------------------------------------------------------------------------

    def run(self, progress: bool = True) -> dict:
        """Trains until cfg.run.steps; checkpoints every cfg.run.checkpoint_every steps and at the end."""
        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.out_dir / LOG_FILE
        if self.dist.is_main:
            remove_leftover_temp_files(self.out_dir)
            if self.step == 0:  # a fresh run: a fresh log, and no fallback into an earlier run's checkpoint
                log_path.unlink(missing_ok=True)
                previous_path(self.out_dir / LAST_CHECKPOINT).unlink(missing_ok=True)
            elif log_path.exists():  # a resumed run appends
                trim_log(log_path, self.step)  # steps logged after the checkpoint are trained again
        bar = tqdm(
            total=cfg.run.steps, initial=self.step, disable=not (progress and self.dist.is_main), unit="step"
        )
        consecutive_bad, window, started = 0, [], time.perf_counter()
        window_start, window_samples = time.perf_counter(), 0
        stream: Iterator[dict] | None = None
        stream_segment, last_good = -1, None
        while self.step < cfg.run.steps:
            segment = self.step // cfg.run.checkpoint_every
            if segment != stream_segment:
                stream, stream_segment = segment_batches(cfg, segment), segment
            batch = next(stream)
            terms = self.train_step(batch)
            if terms is None:
                consecutive_bad += 1
                self.nonfinite_total += 1
                if consecutive_bad > cfg.run.max_nonfinite:
                    where = last_good or "none written yet"
                    raise TrainingError(
                        f"stopped at step {self.step}: {consecutive_bad} consecutive non-finite losses "
                        f"(run.max_nonfinite={cfg.run.max_nonfinite}); last good checkpoint: {where}"
                    )
                continue
            consecutive_bad = 0
            self.step += 1
            window.append(terms)
            window_samples += len(batch["key"])
            bar.update(1)
            if self.step % cfg.run.log_every == 0 or self.step == cfg.run.steps:
                elapsed = time.perf_counter() - window_start
                record = self._log_record(window, window_samples / max(elapsed, 1e-9), batch)
                bar.set_postfix(loss=f"{record['loss']['total']:.3f}", sps=f"{record['samples_per_s']:.1f}")
                if self.dist.is_main:
                    with open(log_path, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                window, window_start, window_samples = [], time.perf_counter(), 0
            if self.step % cfg.run.checkpoint_every == 0 or self.step == cfg.run.steps:
                last_good = self.save()
                record_validation(self)
        bar.close()
        self.save(FINAL_MODEL)
        ddp.barrier(self.dist)  # rank 0's log is complete before any rank reads it for the summary
        summary = self._summary(time.perf_counter() - started, log_path)
        if self.dist.is_main:
            (self.out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
            curve = [
                {"step": r["step"], "loss": r["loss"]["total"], "lr": r["lr"]}
                for r in map(json.loads, log_path.read_text().splitlines())
            ]
            (self.out_dir / CURVE_FILE).write_text(json.dumps(curve, indent=1) + "\n")
            write_curves(self.out_dir)
        return summary

    def _log_record(self, window: list[dict[str, float]], samples_per_s: float, batch: dict) -> dict:
        keys = sorted({k for terms in window for k in terms})
        mean = {k: float(np.mean([t[k] for t in window if k in t])) for k in keys}
        return {
            "step": self.step,
            "lr": self.optimizer.param_groups[0]["lr"],
            "phase": "iuv" if self.step <= self.cfg.optim.iuv_only_steps else "full",
            "loss": mean,
            "samples_per_s": round(samples_per_s, 2),
            "nonfinite_skipped": self.nonfinite_total,
            "corrupt_samples_skipped": int(batch.get("skipped", 0)),
            "labels_dropped": self.labels_dropped,
        }

    def _summary(self, seconds: float, log_path: Path) -> dict:
        records = (
            [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
        )
        first, last = (records[0], records[-1]) if records else ({}, {})
        return {
            "steps": self.step,
            "seconds": round(seconds, 1),
            "first_loss": first.get("loss", {}).get("total", math.nan),
            "final_loss": last.get("loss", {}).get("total", math.nan),
            "final_terms": last.get("loss", {}),
            "nonfinite_skipped": self.nonfinite_total,
            "labels_dropped": self.labels_dropped,
        }
