"""What the trainer needs to run under torchrun (DDP) correctly: the process group, agreed decisions, RNG.

Rules the training loop keeps with these helpers:

- **one decision per step.** A rank whose loss is not finite must not return before backward while the
  others enter the gradient all-reduce (that hangs the job): :func:`all_finite` all-reduces one flag, so
  every rank skips the step or none does;
- **rank 0 writes.** Checkpoints, the log and the summaries come from rank 0 only; the others still take
  part in the collectives that build a checkpoint (:func:`gather_objects`);
- **each rank its own randomness.** Rank ``r`` seeds torch and numpy with ``seed + r`` (rank 0 as a
  single process would), and a checkpoint stores every rank's RNG states (``rng_ranks``) so a resumed rank
  continues its own streams; data order is the loader's rule (``pipeline.loader``: one stream per rank and
  loader worker).

A test-only fault injector, :class:`NonfiniteInjector`, makes chosen ranks see a non-finite loss at chosen
steps (``DANET_DEBUG_NONFINITE="STEP:RANK[,STEP:RANK...]"``), each once.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

NONFINITE_ENV = "DANET_DEBUG_NONFINITE"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job.

    rank:       global rank, 0 .. world_size - 1 (0 for a single process)
    world_size: number of training processes
    local_rank: rank on this node (its CUDA device index)
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed() -> Distributed:
    """Joins the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, Gloo on CPU).

    On CUDA the process's device is set to its LOCAL_RANK first (NCCL collectives use the current device).
    The group is destroyed at interpreter exit.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.distributed.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(_destroy)
    return Distributed(torch.distributed.get_rank(), torch.distributed.get_world_size(), local_rank)


def _destroy() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def all_finite(value: torch.Tensor, dist: Distributed) -> bool:
    """True when ``value`` is finite on every rank (one all-reduce of a 0/1 flag; no collective alone)."""
    bad = torch.tensor([0.0 if bool(torch.isfinite(value).all()) else 1.0], device=value.device)
    if dist.active:
        torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
    return bool(bad.item() == 0.0)


def gather_objects(obj: Any, dist: Distributed) -> list[Any]:
    """Every rank's ``obj`` in rank order (a collective: every rank must call it); ``[obj]`` alone."""
    if not dist.active:
        return [obj]
    out: list[Any] = [None] * dist.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


def barrier(dist: Distributed) -> None:
    """Wait for every rank (no-op for a single process)."""
    if dist.active:
        torch.distributed.barrier()


def rank_rng_state(payload: dict[str, Any], dist: Distributed) -> Any:
    """The RNG states this rank resumes from a checkpoint ``payload``: its own from ``rng_ranks`` when the
    checkpoint was written by as many ranks as run now, else rank 0's ``rng`` (with a warning under DDP:
    the resumed run is then not bit-identical to an uninterrupted one)."""
    ranks = payload.get("rng_ranks") or []
    if len(ranks) == dist.world_size and dist.active:
        return ranks[dist.rank]
    if dist.active:
        log.warning("checkpoint written by %d rank(s), resumed by %d: every rank takes rank 0's RNG state",
                    max(len(ranks), 1), dist.world_size)  # fmt: skip
    return payload["rng"]


def rank_seed(seed: int, dist: Distributed) -> int:
    """The seed of this rank's torch / numpy generators: ``seed + rank`` (rank 0 = the single-process run)."""
    return seed + dist.rank


@dataclass
class NonfiniteInjector:
    """Test hook: the (step, rank) pairs at which the loss is replaced by NaN, each once per process."""

    at: set[tuple[int, int]] = field(default_factory=set)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> NonfiniteInjector:
        """The pairs named by ``environ[DANET_DEBUG_NONFINITE]`` (none when it is unset)."""
        text = environ.get(NONFINITE_ENV, "").strip()
        pairs = set()
        for item in filter(None, (t.strip() for t in text.split(","))):
            step, sep, rank = item.partition(":")
            if not sep or not step.isdigit() or not rank.isdigit():
                raise ValueError(f"{NONFINITE_ENV}: expected STEP:RANK[,STEP:RANK...], got {item!r}")
            pairs.add((int(step), int(rank)))
        return cls(pairs)

    def fires(self, step: int, rank: int) -> bool:
        if (step, rank) in self.at:
            self.at.discard((step, rank))
            return True
        return False
