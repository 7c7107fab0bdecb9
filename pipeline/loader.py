"""Streaming training loader over the shards (WebDataset): mix, shuffle, decode, augment, one-hot IUV, batch.

One or several datasets (``Source(folder, weight)``, ``folder`` = ``SHARD_DIR/NAME/SPLIT`` with index.json)
are read shard by shard, split across nodes (``torch.distributed`` rank) and DataLoader workers, shuffled
(shard order + a sample buffer), decoded, mixed by weight, augmented (:mod:`pipeline.augment`) and batched.
With ``resampled=True`` every worker draws shards with replacement forever and ``epoch_batches`` sets the
epoch length (per worker), the usual set-up for DDP. A sample that fails its checksum (a flipped byte),
or fails to read or decode, is logged and skipped; :data:`SKIPPED` counts them per process and every batch carries the worker's running count.

Batch (B samples): ``image`` uint8 (B, 3, 224, 224) RGB; ``iuv`` uint8 (B, 3, 56, 56) (I, U, V codes);
``iuv_onehot`` float32 (B, 75, 56, 56) (I one-hot, U and V in [0, 1] in their part's channel);
``kp2d`` float32 (B, 24, 3) in input pixels (x, y, visibility); ``kp3d`` float32 (B, 24, 4);
``pose`` float32 (B, 72); ``betas`` float32 (B, 10); ``has_smpl``/``has_iuv``/``has_kp3d`` bool (B,);
``flip`` bool (B,), ``rot`` float32 (B,) degrees; ``key``/``dataset`` lists of str; ``skipped`` int;
DensePose labels ``dp_points``/``dp_count``/``has_dp``/``dpmask``/``has_dpmask`` (pipeline.dp_points.collate_dp).
With ``augment_on="device"`` the workers leave the image warp and the one-hot to the training device: the
batch carries the stored crops and their affines instead of ``image``/``iuv_onehot`` (:func:`collate`,
``deferred``), and :func:`pipeline.augment_torch.device_augment` makes those two from the same draws.

One stream per (rank, worker): given ``seed``, the stream of rank ``r``'s DataLoader worker ``w`` (of ``W``)
is a pure function of (seed, r, w, epoch). Its shard draws (``wds.ResampledShards``: uniform with
replacement, seeded by ``r * 1000 + w``, epoch and seed), its sample shuffle buffer (seeded by seed + epoch
+ ``(r * W + w) << 64``, see :func:`stream_index`) and its augmentation and mixing generators
(``SeedSequence([seed, r, w, epoch, salt])``) all depend on ``(r, w)``, so no two streams repeat each
other, while stream (0, 0) is exactly the single-process stream. Every sample stays reachable from every
stream (each draw picks any shard with probability 1 / shards, and a shard is read whole). Without
resampling, shards are split between ranks, then workers: disjoint streams (one with no shard left
over yields nothing).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import webdataset as wds

from pipeline import shards as fmt
from pipeline.augment import (
    AugmentConfig,
    FlipIUVFn,
    augment_sample,
    default_flip_iuv,
    make_flip_iuv_fn,
    sample_params,
)
from pipeline.dp_points import MASK_MEMBER, POINTS_MEMBER, collate_dp
from pipeline.shared_blocks import POOL_KEY, BlockPool, make_flags, watch_batch

log = logging.getLogger(__name__)

NUM_PARTS = 24
AUGMENT_ON = ("cpu", "device")  # where the image / IUV warps run (make_dataset, data.augment_on)
DP_MEMBERS = {"dp": POINTS_MEMBER, "dpmask": MASK_MEMBER}  # sample key -> shard member (pipeline.dp_points)


@dataclass(frozen=True)
class Source:
    """One dataset split to stream: its shard folder (with index.json) and its mixing weight."""

    folder: str | Path
    weight: float = 1.0


class ShardBodyError(ValueError):
    """The body files a shard folder's index.json records are missing or no longer the ones rendered."""


def shards_flip_iuv_fn(folder: str | Path) -> FlipIUVFn:
    """The IUV mirror for the maps in ``folder``'s shards: that of the body and dense parts its
    ``index.json`` records (render_iuv writes them with their sha256), or the built-in body's when it
    records none (renderers that take no body files). A map rendered from real SMPL with DensePose's UV
    needs DensePose's mirror, not the built-in body's: a flipped sample would otherwise get wrong (U, V).

    Recorded paths are resolved as written (relative ones from the working directory); a recorded file
    that is missing, or whose sha256 changed, raises :class:`ShardBodyError` naming it and the index."""
    from pipeline.body.spec import BodySpec

    index = Path(folder) / fmt.INDEX_NAME
    recorded = (fmt.read_index(folder).get("params") or {}).get("body")
    if not recorded:
        return default_flip_iuv
    try:
        spec = BodySpec(**{k: recorded.get(k, "") for k in ("model", "dense_parts", "extra_regressor")})
        if spec == BodySpec():
            return default_flip_iuv
        now = spec.identity()["sha256"]
    except Exception as e:  # noqa: BLE001 - a missing or unreadable body file, named in the message
        raise ShardBodyError(f"{index}: the shards were rendered with body {recorded.get('model')!r}: {e}; "
                             "run from the folder render_iuv ran in, or pass flip_iuv_fn") from e  # fmt: skip
    if now != recorded.get("sha256", now):
        changed = sorted(k for k in now if now[k] != recorded["sha256"].get(k))
        raise ShardBodyError(f"{index}: body files {changed} differ from the ones the shards were rendered "
                             "with (sha256); re-render, or pass flip_iuv_fn")  # fmt: skip
    return _flip_fn_cached(spec.model, spec.parts_source, spec.fingerprint())


def source_of_url(url: str) -> str:
    """A sample's ``source`` (decode_sample), which picks its flip table: the folder part of the url of the
    shard it was read from (WebDataset's ``__url__``)."""
    return os.path.dirname(url)


def _source_key(folder: str | Path) -> str:
    """The ``source`` of the samples read from ``folder``'s shards."""
    return source_of_url(fmt.shard_url(folder, "x.tar"))


@functools.lru_cache(maxsize=8)
def _flip_fn_cached(model: str, parts: str, _fingerprint: tuple) -> FlipIUVFn:
    return make_flip_iuv_fn(model, parts)  # the table itself is cached on disk (pipeline.render.flip)


class SkipCounter:
    """WebDataset error handler: log the failure, count it, keep going (returns True = continue)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, exn: BaseException) -> bool:
        self.count += 1
        log.warning("skipping a corrupt sample (%d so far in pid %d): %r", self.count, os.getpid(), exn)
        return True


SKIPPED = SkipCounter()


# ---------------------------------------------------------------------------------------------------------
# decoding


def decode_sample(raw: dict) -> dict:
    """Decode one WebDataset sample (bytes by extension) into arrays; raises ValueError when corrupt.

    Returns ``key``, ``image`` (S, S, 3) uint8, ``iuv`` (S, S, 3) uint8 or None, ``kp2d`` (24, 3),
    ``kp3d`` (24, 4) (zeros if absent), ``smpl`` (82,) (zeros if absent), flags, ``margin``, ``dataset``.
    """
    key = raw.get("__key__", "?")
    damaged = fmt.checksum_problem(raw)
    if damaged is not None:
        raise ValueError(f"sample {key} from {raw.get('__url__', '?')}: {damaged}")
    try:
        meta = json.loads(raw["json"])
        image = fmt.decode_jpg(raw["jpg"])
        iuv = fmt.decode_png(raw["iuv.png"]) if "iuv.png" in raw else None
        kp2d = fmt.decode_npy(raw["kp2d.npy"]).reshape(24, 3)
        kp3d = fmt.decode_npy(raw["kp3d.npy"]).reshape(24, 4) if "kp3d.npy" in raw else np.zeros((24, 4))
        smpl = fmt.decode_npy(raw["smpl.npy"]).reshape(fmt.SMPL_DIM) if "smpl.npy" in raw else np.zeros(82)
        dp = {k: fmt.DECODERS[m](raw[m]) if m in raw else None for k, m in DP_MEMBERS.items()}
    except (KeyError, ValueError, json.JSONDecodeError) as e:
        raise ValueError(f"sample {key} from {raw.get('__url__', '?')}: {e}") from e
    if image.shape[0] != image.shape[1] or (iuv is not None and iuv.shape != image.shape):
        raise ValueError(f"sample {key}: image {image.shape} and IUV shapes disagree")
    return {
        "key": key,
        "source": source_of_url(raw.get("__url__", "")),
        "dataset": meta.get("dataset", ""),
        "image": image,
        "iuv": iuv,
        "kp2d": kp2d.astype(np.float32),
        "kp3d": kp3d.astype(np.float32),
        "smpl": smpl.astype(np.float32),
        "has_smpl": "smpl.npy" in raw,
        "has_kp3d": "kp3d.npy" in raw,
        "margin": float(meta["crop"]["margin"]),
        **dp,
    }


# ---------------------------------------------------------------------------------------------------------
# one-hot IUV and batching


def _batch_tensor(shape: tuple[int, ...], dtype: torch.dtype, zero: bool = True) -> torch.Tensor:
    """A zeroed tensor for a batch (``zero=False``: uninitialised, for callers that write every element);
    inside a DataLoader worker it is made in shared memory, so handing the batch to the main process does
    not copy it again (the one-hot alone is ~30 MB per batch of 32)."""
    if torch.utils.data.get_worker_info() is None:
        return torch.zeros(shape, dtype=dtype) if zero else torch.empty(shape, dtype=dtype)
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    out = torch.empty(0, dtype=dtype).set_(_shared_block(nbytes), 0, shape)
    return out.zero_() if zero else out


_POOL: BlockPool | None = None  # this DataLoader worker's reusable blocks (set by make_loader's workers)


def _shared_block(nbytes: int) -> torch.UntypedStorage:
    """A shared-memory block for a worker's batch: from the worker's pool when make_loader gave it one."""
    return _POOL.take(nbytes)[0] if _POOL is not None else torch.UntypedStorage._new_shared(nbytes)


def share_small_tensors(batch: dict, align: int = 64) -> dict:
    """Inside a DataLoader worker: the batch with every tensor not yet in shared memory (labels, affines,
    flags: ~15 small tensors) copied into one shared block, as views of it; outside a worker, ``batch``.

    Each shared storage crosses to the main process as its own file descriptor (a socket connection to
    the worker, a ``recvmsg``, an ``mmap``), ~0.1 ms of CPU on each side per tensor; one block for all of
    them makes the hand-over cost per batch, not per tensor. Views keep their dtype, shape and values;
    every one starts on an ``align``-byte boundary."""
    if torch.utils.data.get_worker_info() is None:
        return batch
    small = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor) and not v.is_shared()}
    offsets, total = {}, 0
    for name, tensor in small.items():
        offsets[name] = total
        total += -(-tensor.numel() * tensor.element_size() // align) * align
    block = _shared_block(max(total, 1))
    out = dict(batch)
    for name, tensor in small.items():
        start = offsets[name] // tensor.element_size()
        view = torch.empty(0, dtype=tensor.dtype).set_(block, start, tensor.shape)
        out[name] = view.copy_(tensor)
    return out


def iuv_onehot(iuv: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 IUV codes (the batch's ``iuv``) -> (B, 75, H, W) float32 network one-hot.

    The encoding of pipeline.render.iuv.iuv_to_onehot (I one-hot in [0:25], U and V in [0, 1] in their
    part's channel of [25:50] and [50:75]; tests hold the two equal), written with three scatters because
    going through that function (decode, one_hot, clone, cat, permute) costs ~20x more per batch, which
    was most of the loader's time. Works on any device: calling it after moving ``batch["iuv"]`` to the GPU
    keeps the worker -> trainer transfer small (``make_dataset(onehot=False)``).
    """
    b, _, h, w = iuv.shape
    n = NUM_PARTS + 1
    index = iuv[:, 0:1].long()
    if index.numel() and int(index.max()) > NUM_PARTS:
        raise ValueError(f"iuv_onehot: part index {int(index.max())} > {NUM_PARTS} in channel 0")
    if iuv.device.type == "cpu":
        out = _batch_tensor((b, 3 * n, h, w), torch.float32)
    else:
        out = torch.zeros(b, 3 * n, h, w, dtype=torch.float32, device=iuv.device)
    out[:, :n].scatter_(1, index, 1.0)
    uv = iuv[:, 1:3].float() / 255.0
    out[:, n : 2 * n].scatter_(1, index, uv[:, 0:1])
    out[:, 2 * n :].scatter_(1, index, uv[:, 1:2])
    out[:, n] = 0.0  # background carries no U, V
    out[:, 2 * n] = 0.0
    return out


def _split_into(hwc: np.ndarray, chw: np.ndarray) -> None:
    """Write an (H, W, C) uint8 array into the (C, H, W) array ``chw`` (contiguous planes) in place."""
    if hwc.shape != (chw.shape[1], chw.shape[2], chw.shape[0]):
        raise ValueError(f"collate: sample array {hwc.shape} does not fit the batch's {chw.shape[1:]}")
    cv2.split(np.ascontiguousarray(hwc), list(chw))  # cv2 writes into the given planes (same shape, dtype)


def _planes(samples: Sequence[dict], name: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, size, size) uint8 batch of the samples' (size, size, 3) ``name`` arrays (zeros where None)
    and the (B,) bool of which samples have one."""
    out = _batch_tensor((len(samples), 3, size, size), torch.uint8, zero=False)  # every row written below
    planes = out.numpy()
    present = torch.zeros(len(samples), dtype=torch.bool)
    for i, s in enumerate(samples):  # HWC -> CHW: cv2.split into the batch's planes, 10x a strided copy
        if s.get(name) is not None:
            _split_into(s[name], planes[i])
            present[i] = True
        else:
            planes[i] = 0
    return out, present


def _stacked(samples: Sequence[dict], name: str, size: int) -> torch.Tensor:
    """(B, size, size, 3) uint8 batch of the samples' ``name`` arrays as they are (HWC, one copy each)."""
    out = _batch_tensor((len(samples), size, size, 3), torch.uint8, zero=False)  # every row written below
    array = out.numpy()
    for i, s in enumerate(samples):
        if s[name].shape != array.shape[1:]:
            raise ValueError(
                f"collate: sample {s.get('key')} {name} {s[name].shape} does not fit the batch's "
                f"{array.shape[1:]} (augment_on=device needs stored crops of one size per batch)"
            )
        array[i] = s[name]
    return out


def collate(samples: Sequence[dict], iuv_size: int = 56, onehot: bool = True, deferred: bool = False) -> dict:
    """Stack augmented samples into the batch described in the module docstring.

    ``deferred=True`` batches samples augmented with ``pixels=False`` (``augment_on="device"``): instead of
    ``image`` and ``iuv_onehot`` the batch carries the stored crops ``crop`` (B, S, S, 3) uint8 RGB
    (channel-last as decoded: the device transposes them for free), ``input_to_crop`` (B, 2, 3) float64
    and ``colour`` (B, 3) float32 (see pipeline.augment.augment_sample), which
    :func:`pipeline.augment_torch.device_augment` turns into ``image`` (and the one-hot) on the device;
    ``iuv`` is the same as without it. All samples of a batch must then share one stored-crop size S.
    """
    if _POOL is None:
        return _collate(samples, iuv_size, onehot, deferred)
    with _POOL.batch():  # a batch that fails here gives its pool blocks back
        batch = _collate(samples, iuv_size, onehot, deferred)
        batch[POOL_KEY] = _POOL.slots_of(batch)  # the consumer releases these when it drops them
    return batch


def _collate(samples: Sequence[dict], iuv_size: int, onehot: bool, deferred: bool) -> dict:
    size = samples[0]["image"].shape[0]
    if deferred:
        pixels: dict = {"crop": _stacked(samples, "image", size)}
        pixels["input_to_crop"] = torch.from_numpy(np.stack([s["input_to_crop"] for s in samples]))
        pixels["colour"] = torch.from_numpy(np.stack([s["colour"] for s in samples]))
    else:
        pixels = {"image": _planes(samples, "image", size)[0]}
    pixels["iuv"], has_iuv = _planes(samples, "iuv", iuv_size)
    smpl = torch.from_numpy(np.stack([s["smpl"] for s in samples]))
    batch = {
        "key": [s["key"] for s in samples],
        "dataset": [s["dataset"] for s in samples],
        **pixels,
        "kp2d": torch.from_numpy(np.stack([s["kp2d"] for s in samples])),
        "kp3d": torch.from_numpy(np.stack([s["kp3d"] for s in samples])),
        "pose": smpl[:, :72].contiguous(),
        "betas": smpl[:, 72:].contiguous(),
        "has_smpl": torch.tensor([s["has_smpl"] for s in samples]),
        "has_iuv": has_iuv,
        "has_kp3d": torch.tensor([s["has_kp3d"] for s in samples]),
        "flip": torch.tensor([bool(s.get("flip", False)) for s in samples]),
        "rot": torch.tensor([float(s.get("rot", 0.0)) for s in samples], dtype=torch.float32),
        "skipped": SKIPPED.count,
    }
    batch.update(collate_dp(samples, iuv_size))  # DensePose points (dp_points, dp_count, has_dp, dpmask)
    if onehot and not deferred:
        batch["iuv_onehot"] = iuv_onehot(batch["iuv"])
    return share_small_tensors(batch)


# ---------------------------------------------------------------------------------------------------------
# pipeline stages


def _worker_seed(seed: int | None, epoch: int, salt: int) -> np.random.SeedSequence:
    """Seed for this (node, worker, epoch): fixed when ``seed`` is given, fresh entropy otherwise."""
    rank, world, worker, workers = wds.utils.pytorch_worker_info()
    if seed is None:
        return np.random.SeedSequence([os.getpid(), time.time_ns(), salt])
    return np.random.SeedSequence([seed, rank, worker, epoch, salt])


class WeightedMix(torch.utils.data.IterableDataset):
    """Interleave several sample streams, drawing each next sample from stream ``i`` with prob ∝ weight.

    Written here instead of ``wds.RandomMix`` because that one draws from the global ``random`` module and
    cannot be seeded per worker. Runs until every stream is exhausted (forever with resampled streams).
    """

    def __init__(self, datasets: Sequence, weights: Sequence[float], seed: int | None = None) -> None:
        if len(datasets) != len(weights) or not datasets or min(weights) <= 0:
            raise ValueError("need one positive weight per dataset")
        self.datasets, self.weights, self.seed, self.epoch = list(datasets), list(weights), seed, 0

    def __iter__(self) -> Iterator[dict]:
        rng = np.random.default_rng(_worker_seed(self.seed, self.epoch, 1))
        self.epoch += 1
        streams = [iter(d) for d in self.datasets]
        weights = np.asarray(self.weights, dtype=np.float64)
        while streams:
            i = int(rng.choice(len(streams), p=weights / weights.sum())) if len(streams) > 1 else 0
            try:
                yield next(streams[i])
            except StopIteration:
                del streams[i]
                weights = np.delete(weights, i)


class Augment:
    """Pipeline stage: draw augmentation parameters per sample from a per-worker generator and apply them
    (``pixels=False``: all but the image warp, which the training device does; same draws). A sample is
    mirrored by ``flip_iuv_fns[sample["source"]]`` (its shard folder's), else by ``flip_iuv_fn``."""

    def __init__(
        self,
        cfg: AugmentConfig,
        flip_iuv_fn: FlipIUVFn | None,
        seed: int | None,
        pixels: bool = True,
        flip_iuv_fns: dict[str, FlipIUVFn] | None = None,
    ) -> None:
        self.cfg, self.flip_iuv_fn, self.seed, self.epoch, self.pixels = cfg, flip_iuv_fn, seed, 0, pixels
        self.flip_iuv_fns = flip_iuv_fns or {}

    def __call__(self, samples: Iterator[dict]) -> Iterator[dict]:
        rng = np.random.default_rng(_worker_seed(self.seed, self.epoch, 2))
        self.epoch += 1
        for sample in samples:
            try:
                params = sample_params(rng, self.cfg)
                flip_fn = self.flip_iuv_fns.get(sample.get("source", ""), self.flip_iuv_fn)
                yield augment_sample(sample, params, self.cfg, flip_fn, pixels=self.pixels)
            except (ValueError, IndexError, TypeError) as e:  # bad values inside a well-formed sample
                SKIPPED(ValueError(f"augmenting sample {sample.get('key')}: {e}"))


def stream_index() -> int:
    """This process's stream among all (rank, DataLoader worker) pairs: ``rank * num_workers + worker``."""
    rank, _, worker, workers = wds.utils.pytorch_worker_info()
    return rank * workers + worker


class _StreamShuffle(wds.detshuffle):
    """``wds.detshuffle`` (seeded ``seed + epoch``) with the stream index in the seed's bits above 64.

    Stream 0 (rank 0, worker 0: every single-process run) shuffles exactly as ``wds.detshuffle``; the
    others get their own permutations, where ``wds.detshuffle`` alone gives every rank and worker the
    same one (so with a single shard all ranks saw the same sample sequence).
    """

    def run(self, src):
        base = self.seed
        self.seed = base + (stream_index() << 64)
        try:
            return super().run(src)  # seeds its generator here, before returning the lazy shuffle
        finally:
            self.seed = base


def _shuffler(size: int, seed: int | None):
    """A shuffle stage over ``size`` items: repeatable per epoch and stream with a seed, fresh without."""
    initial = min(size, 100)
    return wds.shuffle(size, initial) if seed is None else _StreamShuffle(size, initial, seed=seed)


def _read_shards(urls: Iterator[dict], handler: SkipCounter = SKIPPED) -> Iterator[dict]:
    """Pipeline stage: ``{"url"}`` items -> raw samples of those shards; a broken shard is logged and left."""
    for item in urls:
        try:
            yield from fmt.tar_samples(item["url"])
        except Exception as e:  # noqa: BLE001 - any read failure of one shard must not end training
            if not handler(ValueError(f"shard {item['url']}: {e!r}")):
                raise


def source_stream(
    source: Source,
    *,
    shuffle: bool,
    shuffle_buffer: int,
    resampled: bool,
    seed: int | None,
) -> wds.DataPipeline:
    """Decoded samples of one split: node/worker split (or resampled shards), shard + buffer shuffle.

    Same stages as ``wds.WebDataset`` except the tar reading (:func:`pipeline.shards.tar_samples`, faster
    than the standard tarfile module that WebDataset uses).
    """
    urls = fmt.shard_urls(source.folder)
    if not urls:
        raise ValueError(f"{source.folder}: index.json lists no shards")
    if resampled:
        stages: list = [wds.ResampledShards(urls, seed=seed or 0, deterministic=seed is not None)]
    else:
        stages = [wds.SimpleShardList(urls), wds.split_by_node, wds.split_by_worker]
        if shuffle:
            stages.append(_shuffler(len(urls), seed))
    stages.append(_read_shards)
    if shuffle and shuffle_buffer > 1:
        stages.append(_shuffler(shuffle_buffer, seed))
    stages.append(wds.map(decode_sample, handler=SKIPPED))
    return wds.DataPipeline(*stages)


def make_dataset(
    sources: Sequence[Source | str | Path],
    *,
    batch_size: int = 16,
    augment: AugmentConfig | None = None,
    shuffle: bool = True,
    shuffle_buffer: int = 1000,
    resampled: bool = False,
    epoch_batches: int | None = None,
    seed: int | None = None,
    flip_iuv_fn: FlipIUVFn | None = None,
    onehot: bool = True,
    partial: bool = True,
    augment_on: str = "cpu",
) -> wds.DataPipeline:
    """The batched training stream over ``sources`` (iterate it, or hand it to :func:`make_loader`).

    ``augment`` defaults to the training ranges of :class:`AugmentConfig`; pass ``AugmentConfig(enabled=
    False)`` for evaluation. ``seed`` makes shuffling and augmentation repeatable per (node, worker).
    ``augment_on="device"`` leaves the image warp, the colour gains and the one-hot to the
    consumer (:func:`pipeline.augment_torch.device_augment` on the training device; batches as in
    :func:`collate` with ``deferred=True``); the parameter draws and every label are the same as with
    ``"cpu"`` (the default). Flipped IUV maps and DensePose points are mirrored through the body each
    source's index.json records (:func:`shards_flip_iuv_fn`); ``flip_iuv_fn`` overrides that for all.
    """
    if augment_on not in AUGMENT_ON:
        raise ValueError(f"augment_on must be one of {AUGMENT_ON}, got {augment_on!r}")
    deferred = augment_on == "device"
    cfg = augment or AugmentConfig()
    srcs = [s if isinstance(s, Source) else Source(s) for s in sources]
    streams = [
        source_stream(s, shuffle=shuffle, shuffle_buffer=shuffle_buffer, resampled=resampled, seed=seed)
        for s in srcs
    ]
    mixed = streams[0] if len(streams) == 1 else WeightedMix(streams, [s.weight for s in srcs], seed)
    flips = cfg.enabled and cfg.flip_prob > 0 and flip_iuv_fn is None  # evaluation never mirrors
    flip_fns = {_source_key(s.folder): shards_flip_iuv_fn(s.folder) for s in srcs} if flips else {}
    collation = functools.partial(collate, iuv_size=cfg.iuv_size, onehot=onehot, deferred=deferred)
    pipeline = wds.DataPipeline(
        mixed,
        Augment(cfg, flip_iuv_fn, seed, pixels=not deferred, flip_iuv_fns=flip_fns),
        wds.batched(batch_size, collation_fn=collation, partial=partial),
    )
    if epoch_batches:
        pipeline = pipeline.with_epoch(epoch_batches)
    return pipeline


class PooledLoader(torch.utils.data.DataLoader):
    """A DataLoader whose workers reuse the shared memory of batches this process has dropped
    (pipeline.shared_blocks): iterating it releases each batch's blocks when the batch dies."""

    def __init__(self, dataset, num_workers: int, **kwargs) -> None:
        self.flags = make_flags(num_workers)
        init = functools.partial(_worker_init, flags=self.flags)
        super().__init__(dataset, batch_size=None, num_workers=num_workers, persistent_workers=True,
                         worker_init_fn=init, **kwargs)  # fmt: skip

    def __iter__(self) -> Iterator[dict]:
        for batch in super().__iter__():
            yield watch_batch(batch, self.flags)


def make_loader(dataset: wds.DataPipeline, num_workers: int = 0, **kwargs) -> torch.utils.data.DataLoader:
    """A DataLoader over the already-batched ``dataset`` (batch_size=None) with ``num_workers`` workers
    (persistent, reusing their batches' shared memory: :class:`PooledLoader`)."""
    if num_workers > 0:
        return PooledLoader(dataset, num_workers, **kwargs)
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=0, worker_init_fn=_worker_init,
                                       **kwargs)  # fmt: skip


def _worker_init(worker: int, flags: torch.Tensor | None = None) -> None:
    import cv2

    global _POOL
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    _POOL = BlockPool(flags, worker) if flags is not None else None
