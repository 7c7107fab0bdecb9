"""Loader: labels survive manifest -> shards -> batches; mixing, worker/node splitting, corrupt samples."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pipeline import loader as L
from pipeline import shards as fmt
from pipeline.augment import AugmentConfig
from tests.test_shards_helpers import build_shards, fake_flip_iuv

PLAIN = AugmentConfig(enabled=False)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    return root, build_shards(root, 14, shard_size=4, crop_size=112)


def _all(ds) -> list[dict]:
    return [b for b in ds]


def test_labels_survive_manifest_to_batches(toy):
    root, folder = toy
    manifest = root / "toy" / "manifests" / "toy" / "train.parquet"
    rows = {r["sample_id"]: r for r in pq.read_table(manifest).to_pylist()}
    batches = _all(L.make_dataset([folder], batch_size=5, augment=PLAIN, shuffle=False))
    keys = [k for b in batches for k in b["key"]]
    assert sorted(keys) == sorted(rows)  # nothing lost or repeated (no rejects in this manifest)
    b = batches[0]
    assert b["image"].shape == (5, 3, 224, 224) and b["image"].dtype == torch.uint8
    assert b["iuv"].shape == (5, 3, 56, 56) and b["iuv_onehot"].shape == (5, 75, 56, 56)
    for batch in batches:
        for i, key in enumerate(batch["key"]):
            row = rows[key]
            assert batch["has_smpl"][i] == row["has_smpl"] == batch["has_iuv"][i]
            assert batch["has_kp3d"][i] == row["has_kp3d"]
            if row["has_smpl"]:
                np.testing.assert_allclose(batch["pose"][i], row["pose"], rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(batch["betas"][i], row["betas"], rtol=1e-5, atol=1e-6)
            if row["has_kp3d"]:
                np.testing.assert_allclose(batch["kp3d"][i], row["kp3d"], rtol=1e-5, atol=1e-6)
            # kp2d: image -> stored crop -> centre crop; the person box fills the 224 input
            side = 200 * row["scale"]
            expect = (np.asarray(row["kp2d"])[:, :2] - row["center"]) * (224 / side) + 111.5
            np.testing.assert_allclose(batch["kp2d"][i, :, :2], expect, atol=0.05)
            np.testing.assert_array_equal(batch["kp2d"][i, :, 2], np.asarray(row["kp2d"])[:, 2])


def test_onehot_layout():
    iuv = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    iuv[0, :, 0, 1] = torch.tensor([7, 255, 51])
    oh = L.iuv_onehot(iuv)
    assert oh.shape == (1, 75, 2, 2)
    assert oh[0, :25].sum(0).eq(1).all() and oh[0, 7, 0, 1] == 1 and oh[0, 0, 0, 0] == 1
    assert oh[0, 25 + 7, 0, 1] == 1.0 and abs(oh[0, 50 + 7, 0, 1] - 0.2) < 1e-6
    assert oh[0, 25:].sum() == pytest.approx(1.2)  # U, V only where the part is


def test_onehot_matches_the_render_encoding():
    from pipeline.render.iuv import decode_iuv, iuv_to_onehot

    iuv = torch.randint(0, 256, (3, 3, 9, 7), dtype=torch.uint8)
    iuv[:, 0] %= 25
    expect = iuv_to_onehot(decode_iuv(iuv.permute(0, 2, 3, 1)))
    torch.testing.assert_close(L.iuv_onehot(iuv), expect)
    with pytest.raises(ValueError, match="part index"):
        L.iuv_onehot(torch.full((1, 3, 2, 2), 30, dtype=torch.uint8))


def test_augmented_batches_are_repeatable_with_a_seed(toy):
    _, folder = toy
    kw = dict(batch_size=4, seed=7, shuffle_buffer=8, flip_iuv_fn=fake_flip_iuv)
    a, b = _all(L.make_dataset([folder], **kw)), _all(L.make_dataset([folder], **kw))
    assert [x["key"] for x in a] == [x["key"] for x in b]
    assert all(
        torch.equal(x["image"], y["image"]) and torch.equal(x["pose"], y["pose"]) for x, y in zip(a, b)
    )
    assert any(x["flip"].any() for x in a) and any((x["rot"] != 0).any() for x in a)


def test_two_workers_split_the_shards(toy):
    _, folder = toy
    ds = L.make_dataset([folder], batch_size=3, augment=PLAIN, shuffle=False)
    keys = [k for b in L.make_loader(ds, num_workers=2) for k in b["key"]]
    assert sorted(keys) == [f"s{i:04d}" for i in range(14)]


def test_nodes_get_disjoint_shards(toy, monkeypatch):
    _, folder = toy
    seen = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        ds = L.make_dataset([folder], batch_size=3, augment=PLAIN, shuffle=False)
        seen.append({k for b in ds for k in b["key"]})
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert seen[0] | seen[1] == {f"s{i:04d}" for i in range(14)}


def test_mixing_follows_the_weights_and_epoch_length(toy, tmp_path):
    root, folder_a = toy
    folder_b = build_shards(tmp_path, 6, shard_size=3, crop_size=64, dataset="other")
    ds = L.make_dataset([L.Source(folder_a, 3.0), L.Source(folder_b, 1.0)], batch_size=10, augment=PLAIN,
                        resampled=True, epoch_batches=30, seed=1, onehot=False)  # fmt: skip
    batches = _all(ds)
    assert len(batches) == 30
    names = [d for b in batches for d in b["dataset"]]
    assert set(names) == {"toy", "other"}
    assert 0.68 < names.count("toy") / len(names) < 0.82


def test_a_corrupt_sample_is_skipped_and_counted(toy, tmp_path):
    import tarfile

    _, folder = toy
    src = folder / "toy-train-000001.tar"
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(src) as tar:
        for info in tar:
            key, _, ext = info.name.partition(".")
            samples.setdefault(key, {})[ext] = tar.extractfile(info).read()
    samples["s0005"]["jpg"] = b"\xff\xd8 broken"
    samples["s0006"]["kp2d.npy"] = b"garbage"
    fmt.write_tar(tmp_path / "bad.tar", sorted(samples.items()))
    fmt.write_index(tmp_path, {}, [fmt.ShardEntry("bad.tar", 4, 0, "")])
    before = L.SKIPPED.count
    keys = [
        k for b in L.make_dataset([tmp_path], batch_size=2, augment=PLAIN, shuffle=False) for k in b["key"]
    ]
    assert sorted(keys) == ["s0004", "s0007"]
    assert L.SKIPPED.count - before == 2


def test_augmented_keypoints_follow_the_image(toy):
    """Through the loader, every visible keypoint inside the input sits on the one-hot map's foreground."""
    _, folder = toy
    batch = next(iter(L.make_dataset([folder], batch_size=14, seed=3, flip_iuv_fn=fake_flip_iuv)))
    oh = batch["iuv_onehot"]
    hits = total = 0
    for i in range(14):
        if not batch["has_iuv"][i]:
            continue
        for x, y, vis in batch["kp2d"][i].tolist():
            u, v = round((x + 0.5) / 4 - 0.5), round((y + 0.5) / 4 - 0.5)
            if vis > 0 and 0 <= u < 56 and 0 <= v < 56:
                total += 1
                hits += oh[i, 0, v, u] == 0
    assert total > 50 and hits == total


def test_own_tar_reader_matches_tarfile(tmp_path):
    import tarfile

    long_key = "k" * 120  # GNU long-name members
    samples = [
        ("a1", {"jpg": b"x" * 700, "json": b"{}"}),
        (long_key, {"kp2d.npy": fmt.encode_npy(np.ones((24, 3)))}),
    ]
    fmt.write_tar(tmp_path / "t.tar", samples)
    with tarfile.open(tmp_path / "t.tar") as tar:
        ref = [(m.name, tar.extractfile(m).read()) for m in tar]
    with open(tmp_path / "t.tar", "rb") as f:
        assert list(fmt.iter_tar_members(f)) == ref
    got = list(fmt.tar_samples(tmp_path / "t.tar"))
    assert [s["__key__"] for s in got] == ["a1", long_key] and got[0]["jpg"] == b"x" * 700
    np.testing.assert_array_equal(fmt.decode_npy(got[1]["kp2d.npy"]), np.ones((24, 3), np.float32))


def test_a_truncated_shard_is_skipped_not_fatal(toy, tmp_path):
    _, folder = toy
    data = (folder / "toy-train-000000.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2 + 100])
    (tmp_path / "ok.tar").write_bytes((folder / "toy-train-000001.tar").read_bytes())
    fmt.write_index(tmp_path, {}, [fmt.ShardEntry("cut.tar", 4, 0, ""), fmt.ShardEntry("ok.tar", 4, 0, "")])
    before = L.SKIPPED.count
    ds = L.make_dataset([tmp_path], batch_size=2, augment=PLAIN, shuffle=False)
    keys = [k for b in ds for k in b["key"]]
    assert {"s0004", "s0005", "s0006", "s0007"} <= set(keys) and len(keys) < 8
    assert L.SKIPPED.count > before


@pytest.mark.parametrize("augment_on", L.AUGMENT_ON)
def test_worker_batches_equal_in_process_batches_and_live_in_shared_memory(toy, augment_on):
    """Batches built inside DataLoader workers go straight to shared memory and hold the same values; the
    small tensors travel as views of one shared block (one file descriptor instead of one each)."""
    _, folder = toy
    kwargs = dict(batch_size=4, augment=AugmentConfig(), shuffle=False, seed=3, flip_iuv_fn=fake_flip_iuv,
                  augment_on=augment_on)  # fmt: skip
    here = list(L.make_dataset([folder], **kwargs))
    there = list(L.make_loader(L.make_dataset([folder], **kwargs), num_workers=1))
    assert [b["key"] for b in here] == [b["key"] for b in there]
    for a, b in zip(here, there):
        assert a.keys() == b.keys()
        for name, value in a.items():
            if isinstance(value, torch.Tensor):
                assert b[name].dtype == value.dtype and torch.equal(value, b[name]), name
                assert b[name].is_shared() and not value.is_shared(), name
            else:
                assert b[name] == value, name
    tensors = {k: v for k, v in there[0].items() if isinstance(v, torch.Tensor)}
    pixels = {"crop", "iuv"} if augment_on == "device" else {"image", "iuv", "iuv_onehot"}
    storages = {k: v.untyped_storage().data_ptr() for k, v in tensors.items()}
    small = {storages[k] for k in tensors if k not in pixels}
    assert len(small) == 1 and len(tensors) - len(pixels) >= 14  # every label in one block
    assert len(set(storages.values())) == len(pixels) + 1


def test_sharing_small_tensors_keeps_values_dtypes_and_alignment(monkeypatch):
    import torch.utils.data as tud

    monkeypatch.setattr(tud, "get_worker_info", lambda: object())  # as inside a worker
    batch = {"a": torch.arange(3, dtype=torch.uint8), "b": torch.tensor([[1.5, -2.0]], dtype=torch.float64),
             "c": torch.tensor([True, False]), "key": ["x"], "n": 7}  # fmt: skip
    out = L.share_small_tensors(batch)
    assert out["key"] == ["x"] and out["n"] == 7
    for name in ("a", "b", "c"):
        assert out[name].dtype == batch[name].dtype and torch.equal(out[name], batch[name])
        assert out[name].is_shared() and out[name].data_ptr() % 64 == 0
    assert len({out[n].untyped_storage().data_ptr() for n in ("a", "b", "c")}) == 1
