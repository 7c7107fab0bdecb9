"""Shared-memory blocks that DataLoader workers reuse for their batches once the consumer has let go.

A worker hands each batch tensor over in shared memory (pipeline.loader._batch_tensor). A fresh block
costs far more than the copy into it: the kernel creates, maps and zeroes every page on first touch and
frees them when the consumer drops the batch. On this project's CI-class VM that was ~0.25 ms per
sample for the 256-pixel stored crop, against ~0.04 ms for the copy itself (bench.loader). So each worker
keeps a few blocks and writes the next batch into one the consumer has released.

The protocol (one ``flags`` byte per slot, in shared memory made by :func:`make_flags` in the consumer
before the workers start, so every process sees the same bytes):

- the worker takes a slot whose flag is 0 (or an empty one, allocating its block), sets the flag to 1
  and writes the batch into the block; with every flag at 1 it falls back to a fresh, unpooled block,
  so nothing waits and nothing in use is ever written;
- the consumer, on receiving a batch (:func:`watch_batch`), attaches to each pooled tensor's storage a
  finalizer that sets the slot's flag back to 0 when that storage dies: when the batch, and every view
  of it the consumer kept, is gone (storages keep their Python object while any tensor uses them).

A batch that fails after taking blocks (a collate error) gives them back: the worker builds each batch
inside :meth:`BlockPool.batch`, which clears the flags of the slots taken in it when it raises. Worker
``w`` owns slots ``[w * SLOTS, (w + 1) * SLOTS)``. A batch names its pooled tensors and their slots under
:data:`POOL_KEY` (:meth:`BlockPool.slots_of`), which :func:`watch_batch` removes.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

import torch

# per worker: a batch takes up to 4 blocks (image or stored crop, IUV, one-hot, the small tensors); the
# DataLoader prefetches 2 batches per worker and a consumer holds 1-2: 16 covers that. The blocks stay
# allocated while the worker lives (~25 MB per worker at batch 32 with augment_on=device).
SLOTS = 16
POOL_KEY = "_pooled_slots"  # batch entry {tensor name: slot}, removed in the consumer


def make_flags(num_workers: int) -> torch.Tensor:
    """(num_workers * SLOTS,) uint8 zeros in shared memory: the slots' in-use flags."""
    return torch.zeros(max(num_workers, 1) * SLOTS, dtype=torch.uint8).share_memory_()


class BlockPool:
    """One worker's blocks: ``take(nbytes)`` -> (storage, slot or None)."""

    def __init__(self, flags: torch.Tensor, worker: int) -> None:
        self.flags, self.first = flags, worker * SLOTS
        self.blocks: list[torch.UntypedStorage | None] = [None] * SLOTS
        self.taken: list[int] = []  # slots taken since the current batch() began

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Build one batch: if the body raises, the slots it took are released (nothing else holds
        them: the batch never reached the consumer) and the error propagates."""
        self.taken = []
        try:
            yield
        except BaseException:
            for slot in self.taken:
                self.flags[slot] = 0
            raise
        finally:
            self.taken = []

    def take(self, nbytes: int) -> tuple[torch.UntypedStorage, int | None]:
        """A shared block of ``nbytes``: a released one of that size, else a new one in an empty slot or
        in place of the smallest released block of another size, else (every slot in use) a fresh
        unpooled one (slot None)."""
        spare: int | None = None  # where a new block goes: an empty slot, else the smallest released one
        for i, block in enumerate(self.blocks):
            slot = self.first + i
            if self.flags[slot]:
                continue
            if block is not None and block.nbytes() == nbytes:
                self.flags[slot] = 1
                self.taken.append(slot)
                return block, slot
            if spare is None or _size(block) < _size(self.blocks[spare]):
                spare = i
        fresh = torch.UntypedStorage._new_shared(nbytes)
        if spare is None:
            return fresh, None
        self.blocks[spare] = fresh
        self.flags[self.first + spare] = 1
        self.taken.append(self.first + spare)
        return fresh, self.first + spare

    def slots_of(self, batch: dict) -> dict[str, int]:
        """{name: slot} of the batch's tensors that sit in a block taken in the current :meth:`batch`."""
        taken = {self.blocks[slot - self.first].data_ptr(): slot for slot in self.taken}
        return {
            name: taken[value.untyped_storage().data_ptr()]
            for name, value in batch.items()
            if isinstance(value, torch.Tensor) and value.untyped_storage().data_ptr() in taken
        }


def _size(block: torch.UntypedStorage | None) -> int:
    return -1 if block is None else block.nbytes()


def watch_batch(batch: dict, flags: torch.Tensor) -> dict:
    """In the consumer: release each pooled tensor's slot when its storage dies; returns ``batch``
    without :data:`POOL_KEY`."""
    slots = batch.pop(POOL_KEY, None) if isinstance(batch, dict) else None
    for name, slot in (slots or {}).items():
        weakref.finalize(batch[name].untyped_storage(), flags.__setitem__, slot, 0)
    return batch
