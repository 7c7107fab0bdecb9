"""The loader mirrors each source's IUV maps through the body its index.json records (real SMPL, not the
built-in body), and refuses shards whose recorded body files are gone or changed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from pipeline import loader as L
from pipeline import shards as fmt
from pipeline.augment import AugmentConfig, default_flip_iuv, make_flip_iuv_fn
from pipeline.body.spec import BodySpec
from tests.test_shards_helpers import build_shards

ALWAYS_FLIP = AugmentConfig(
    flip_prob=1.0, rot_prob=0.0, scale_jitter=0.0, trans_jitter=0.0, colour_jitter=0.0
)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build_shards(tmp_path_factory.mktemp("body_flip"), 8, shard_size=8)


def _record_body(src, dst, body: dict | None):
    shutil.copytree(src, dst)
    doc = json.loads((dst / fmt.INDEX_NAME).read_text())
    fmt.write_index(dst, dict(doc["params"], body=body), [fmt.ShardEntry.from_json(e) for e in doc["shards"]])
    return dst


def _smpl_spec(files) -> BodySpec:
    return BodySpec(model=str(files["smpl"]), dense_parts=str(files["uv"]))


def _flipped_iuv(folder, **kwargs) -> torch.Tensor:
    batch = next(
        iter(L.make_dataset([folder], batch_size=8, augment=ALWAYS_FLIP, shuffle=False, seed=0, **kwargs))
    )
    assert batch["flip"].all() and batch["has_iuv"].sum() >= 4
    return batch["iuv"]


def test_shards_rendered_from_real_smpl_are_flipped_through_its_mirror_table(toy, smpl_standin, tmp_path):
    _, files = smpl_standin
    spec = _smpl_spec(files)
    folder = _record_body(toy, tmp_path / "smpl_shards", spec.identity())
    chosen = L.shards_flip_iuv_fn(folder)
    expected = make_flip_iuv_fn(spec.model, spec.parts_source)
    np.testing.assert_array_equal(chosen.keywords["table"].lut, expected.keywords["table"].lut)
    # the batch equals the one made with that body passed by hand, and not the built-in body's
    got = _flipped_iuv(folder)
    assert torch.equal(got, _flipped_iuv(folder, flip_iuv_fn=expected))
    builtin = _flipped_iuv(folder, flip_iuv_fn=default_flip_iuv)
    fg = got[:, 0] > 0
    assert fg.sum() > 500 and torch.equal(got[:, 0], builtin[:, 0])  # same parts: PART_FLIP is the body's
    assert (
        got[:, 1:][fg[:, None].expand(-1, 2, -1, -1)] != builtin[:, 1:][fg[:, None].expand(-1, 2, -1, -1)]
    ).any()


def test_shards_without_a_recorded_body_use_the_builtin_mirror(toy, tmp_path):
    assert L.shards_flip_iuv_fn(toy) is default_flip_iuv  # the test renderer takes no body files
    builtin = _record_body(toy, tmp_path / "builtin", BodySpec().identity())
    assert L.shards_flip_iuv_fn(builtin) is default_flip_iuv


def test_a_missing_or_changed_body_file_is_named(toy, smpl_standin, tmp_path):
    _, files = smpl_standin
    recorded = _smpl_spec(files).identity()
    gone = dict(recorded, dense_parts=str(tmp_path / "nowhere" / "UV_Processed.mat"))
    folder = _record_body(toy, tmp_path / "gone", gone)
    with pytest.raises(L.ShardBodyError, match=r"gone/index\.json.*UV_Processed\.mat.*not found"):
        L.make_dataset([folder])
    changed = dict(recorded, sha256={k: "0" * 64 if k.startswith("dense_parts") else v
                                     for k, v in recorded["sha256"].items()})  # fmt: skip
    folder = _record_body(toy, tmp_path / "changed", changed)
    with pytest.raises(
        L.ShardBodyError, match=r"changed/index\.json: body files \['dense_parts:UV_Processed"
    ):
        L.shards_flip_iuv_fn(folder)
