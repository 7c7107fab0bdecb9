"""Workers reuse the shared memory of batches the consumer dropped, and never write a block still in use."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from pipeline import loader as L
from pipeline.augment import AugmentConfig
from pipeline.shared_blocks import POOL_KEY, SLOTS, BlockPool, make_flags, watch_batch
from tests.test_shards_helpers import build_shards, fake_flip_iuv


def test_a_block_is_reused_only_after_its_flag_is_cleared():
    flags = make_flags(2)
    pool = BlockPool(flags, worker=1)
    first, slot = pool.take(1000)
    assert slot == SLOTS and flags[SLOTS] == 1 and first.is_shared()
    second, other = pool.take(1000)  # the first is still in use: another block
    assert other == SLOTS + 1 and second.data_ptr() != first.data_ptr()
    flags[slot] = 0  # the consumer let go of the first
    again, same = pool.take(1000)
    assert same == slot and again.data_ptr() == first.data_ptr() and flags[slot] == 1
    assert flags[:SLOTS].sum() == 0  # worker 0's slots untouched


def test_with_every_slot_in_use_the_pool_hands_out_fresh_unpooled_blocks():
    flags = make_flags(1)
    pool = BlockPool(flags, worker=0)
    taken = [pool.take(64) for _ in range(SLOTS)]
    fresh, slot = pool.take(64)
    assert slot is None and fresh.data_ptr() not in {b.data_ptr() for b, _ in taken}
    flags[3] = 0  # a released block of another size is replaced, not written past its end
    bigger, slot = pool.take(128)
    assert slot == 3 and bigger.nbytes() == 128


def test_a_new_size_goes_to_an_empty_slot_then_in_place_of_the_smallest_released_block():
    flags = make_flags(1)
    pool = BlockPool(flags, worker=0)
    big, _ = pool.take(4096)
    small, _ = pool.take(64)
    flags[0] = flags[1] = 0  # both released
    _, slot = pool.take(100)
    assert slot == 2 and pool.blocks[0] is big  # an empty slot first: the released blocks stay
    for _ in range(3, SLOTS):  # fill every empty slot
        pool.take(8)
    _, slot = pool.take(200)  # no empty slot left: the 64-byte block goes, the 4096-byte one stays
    assert slot == 1 and pool.blocks[0] is big and pool.blocks[1].nbytes() == 200


def test_the_consumer_releases_a_slot_when_the_batch_and_its_views_are_gone():
    flags = make_flags(1)
    flags[5] = 1
    storage = torch.UntypedStorage._new_shared(16)
    batch = {"crop": torch.empty(0, dtype=torch.uint8).set_(storage, 0, (4, 4)), POOL_KEY: {"crop": 5}}
    del storage
    batch = watch_batch(batch, flags)
    assert POOL_KEY not in batch
    view = batch["crop"][1:3]
    del batch
    gc.collect()
    assert flags[5] == 1  # a view of the block is alive: still in use
    del view
    gc.collect()
    assert flags[5] == 0


@pytest.mark.parametrize("augment_on", L.AUGMENT_ON)
def test_batches_kept_alive_past_the_pool_are_never_overwritten(tmp_path, augment_on):
    """More batches held at once than a worker has slots: every one still equals the in-process batch."""
    folder = build_shards(tmp_path, 2 * SLOTS + 4, shard_size=2 * SLOTS + 4)
    kwargs = dict(batch_size=1, augment=AugmentConfig(), shuffle=False, seed=5, flip_iuv_fn=fake_flip_iuv,
                  augment_on=augment_on)  # fmt: skip
    in_process = L.make_dataset([folder], **kwargs)
    loader = L.make_loader(L.make_dataset([folder], **kwargs), num_workers=1)
    for _ in range(2):  # the second pass (its own draws) reuses the blocks the first pass released
        here, there = list(in_process), list(loader)
        assert len(there) == len(here) > SLOTS
        for a, b in zip(here, there):
            assert POOL_KEY not in b and a["key"] == b["key"]
            pixels = "crop" if augment_on == "device" else "image"
            for name in (pixels, "iuv", "kp2d", "pose", "flip"):
                assert torch.equal(a[name], b[name]), (a["key"], name)
        del there
        gc.collect()
    assert int(loader.flags.sum()) == 0  # every batch dropped: every slot released


def test_a_batch_that_fails_in_collate_gives_its_blocks_back(monkeypatch):
    """Collate as a pooled worker runs it: a sample that does not fit fails the batch after the image
    and IUV blocks were taken; those slots are free again, while a good batch keeps its blocks held."""
    flags = make_flags(1)
    monkeypatch.setattr(L, "_POOL", BlockPool(flags, worker=0))
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())  # as inside a worker
    rng = np.random.default_rng(0)
    samples = [
        {"key": f"k{i}", "dataset": "d", "image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
         "iuv": rng.integers(0, 25, (8, 8, 3), dtype=np.uint8), "kp2d": np.zeros((24, 3), np.float32),
         "kp3d": np.zeros((24, 4), np.float32), "smpl": np.zeros(82, np.float32), "has_smpl": True,
         "has_kp3d": False}
        for i in range(2)
    ]  # fmt: skip
    good = L.collate(samples, iuv_size=8)
    held = {slot for slot in good[POOL_KEY].values()}
    assert len(held) >= 3 and {int(s) for s in flags.nonzero()} == held  # image, IUV, one-hot, small
    samples[1]["iuv"] = samples[1]["iuv"][:4]
    with pytest.raises(ValueError, match="does not fit"):
        L.collate(samples, iuv_size=8)
    assert {int(s) for s in flags.nonzero()} == held  # the failed batch's blocks are free again
    assert L._POOL.taken == []
