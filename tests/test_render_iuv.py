"""Cameras, IUV rendering, encodings, one-hot round trip, coarse parts and downsampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.body.constants import PART_TO_COARSE
from pipeline.render.cameras import PerspectiveCamera, WeakPerspectiveCamera
from pipeline.render.iuv import (
    IUVRenderer,
    coarse_index,
    decode_iuv,
    downsample_iuv,
    encode_iuv,
    iuv_to_onehot,
    onehot_to_iuv,
)
from pipeline.render.meshes import sphere_dense_parts
from pipeline.render.rasterize import warp_available


def _rot_y(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@pytest.fixture(scope="module")
def sphere():
    verts, _, parts = sphere_dense_parts(24, 32)
    batch = torch.stack([verts @ _rot_y(a).T * 0.7 for a in (0.3, 2.0, -1.0)])
    return batch, parts


def test_weak_perspective_camera_matches_the_paper_and_scales_with_crop():
    cam = torch.tensor([[0.9, 0.1, -0.2]])
    crop = WeakPerspectiveCamera(cam)
    assert crop.focal == 5000.0
    torch.testing.assert_close(crop.translation(), torch.tensor([[0.1, -0.2, 2 * 5000 / (224 * 0.9)]]))
    origin = torch.zeros(1, 1, 3)
    tz = 2 * 5000 / (224 * 0.9)
    scr = crop.to_screen(origin, 224, 224)
    torch.testing.assert_close(scr[0, 0], torch.tensor([112 + 5000 * 0.1 / tz, 112 - 5000 * 0.2 / tz, tz]))
    # the same camera on a 448 crop, or rendered at 56 px, is the same picture scaled
    big = WeakPerspectiveCamera(cam, crop_size=448).to_screen(origin, 448, 448)
    small = crop.to_screen(origin, 56, 56)
    torch.testing.assert_close(big[0, 0, :2], scr[0, 0, :2] * 2)
    torch.testing.assert_close(small[0, 0, :2], scr[0, 0, :2] / 4)


def test_perspective_camera_reproduces_the_crop_camera():
    cam = torch.tensor([[0.8, 0.05, 0.1]])
    crop = WeakPerspectiveCamera(cam)
    K = torch.tensor([[[5000.0, 0.0, 112.0], [0.0, 5000.0, 112.0], [0.0, 0.0, 1.0]]])
    persp = PerspectiveCamera(K, torch.eye(3)[None], crop.translation(), image_size=(224, 224))
    pts = torch.randn(1, 20, 3) * 0.5
    torch.testing.assert_close(persp.to_screen(pts, 56, 56), crop.to_screen(pts, 56, 56))
    with pytest.raises(ValueError, match="R must be"):
        PerspectiveCamera(K, torch.eye(3), torch.zeros(1, 3))


def test_rendered_iuv_has_parts_and_uv_in_range(sphere):
    verts, parts = sphere
    iuv = IUVRenderer(parts, backend="torch").render(
        verts, WeakPerspectiveCamera(torch.tensor([[1.0, 0, 0]] * 3)), 64, 64
    )
    assert iuv.shape == (3, 64, 64, 3) and iuv.dtype == torch.float32
    part = iuv[..., 0]
    fg = part > 0
    assert set(part[fg].long().unique().tolist()) <= {1, 2, 3, 4} and fg.float().mean() > 0.2
    assert torch.all((iuv[..., 1:] >= 0) & (iuv[..., 1:] <= 1))
    assert torch.all(iuv[~fg] == 0)
    # u, v vary smoothly over the surface: most neighbouring pixels of one part differ by little
    same = (part[:, :, 1:] == part[:, :, :-1]) & fg[:, :, 1:]
    du = (iuv[:, :, 1:, 1] - iuv[:, :, :-1, 1]).abs()[same]
    assert du.median() < 0.05


@pytest.mark.skipif(not warp_available(), reason="no warp")
def test_warp_and_torch_iuv_agree(sphere):
    verts, parts = sphere
    cam = WeakPerspectiveCamera(torch.tensor([[1.0, 0.0, 0.0]] * 3))
    a = IUVRenderer(parts, backend="warp").render(verts, cam, 56, 56)
    b = IUVRenderer(parts, backend="torch").render(verts, cam, 56, 56)
    same = a[..., 0] == b[..., 0]
    assert same.float().mean() >= 0.9999
    assert (a[..., 1:] - b[..., 1:]).abs()[same].max() < 1e-3


def test_empty_and_out_of_frame_render_empty_maps(sphere):
    verts, parts = sphere
    renderer = IUVRenderer(parts, backend="torch")
    far_off = WeakPerspectiveCamera(torch.tensor([[1.0, 50.0, 0.0]] * 3))
    assert torch.all(renderer.render(verts, far_off, 32, 32) == 0)
    none = renderer.render(verts[:0], WeakPerspectiveCamera(torch.zeros(0, 3) + 1), 32, 32)
    assert none.shape == (0, 32, 32, 3)


def test_uint8_encoding_and_onehot_round_trip_exactly(sphere):
    verts, parts = sphere
    iuv = IUVRenderer(parts, backend="torch").render(verts, WeakPerspectiveCamera(torch.ones(3, 3)), 48, 48)
    enc = encode_iuv(iuv)
    assert enc.dtype == torch.uint8
    dec = decode_iuv(enc)
    assert torch.equal(encode_iuv(dec), enc)
    assert (dec - iuv).abs().max() <= 0.5 / 255 + 1e-6
    onehot = iuv_to_onehot(dec)
    assert onehot.shape == (3, 75, 48, 48)
    assert torch.equal(onehot[:, :25].sum(1), torch.ones(3, 48, 48))
    assert torch.equal(onehot_to_iuv(onehot), dec)
    # numpy in, numpy out
    enc_np = encode_iuv(iuv.numpy())
    assert isinstance(enc_np, np.ndarray) and np.array_equal(enc_np, enc.numpy())
    with pytest.raises(ValueError, match="part index"):
        decode_iuv(torch.full((2, 2, 3), 30, dtype=torch.uint8))


def test_onehot_puts_uv_in_the_part_channel():
    iuv = torch.tensor([[[[3.0, 0.25, 0.75], [0.0, 0.0, 0.0]]]])
    onehot = iuv_to_onehot(iuv)
    assert onehot[0, 3, 0, 0] == 1 and onehot[0, 25 + 3, 0, 0] == 0.25 and onehot[0, 50 + 3, 0, 0] == 0.75
    assert onehot[0, 25:, 0, 0].sum() == 1.0 and onehot[0, 0, 0, 1] == 1 and onehot[0, 25:, 0, 1].sum() == 0


def test_coarse_index_uses_part_to_coarse():
    parts = torch.arange(25)
    assert coarse_index(parts).tolist() == list(PART_TO_COARSE)
    assert coarse_index(parts.float()).tolist() == list(PART_TO_COARSE)


@pytest.mark.parametrize("mode", ["nearest", "area"])
def test_downsample_keeps_i_exact(sphere, mode):
    verts, parts = sphere
    iuv = decode_iuv(
        encode_iuv(
            IUVRenderer(parts, backend="torch").render(
                verts, WeakPerspectiveCamera(torch.ones(3, 3)), 224, 224
            )
        )
    )
    small = downsample_iuv(iuv, 56, 56, mode=mode)
    assert small.shape == (3, 56, 56, 3)
    part = small[..., 0]
    assert torch.equal(part, part.round()) and set(part.unique().long().tolist()) <= {0, 1, 2, 3, 4}
    assert torch.all(small[part == 0] == 0)
    if mode == "nearest":
        assert torch.equal(small, iuv[:, 2::4, 2::4])
    else:
        agree = (part == iuv[:, 2::4, 2::4, 0]).float().mean()
        assert agree > 0.95
    with pytest.raises(ValueError):
        downsample_iuv(iuv, 50, 50, mode="area")


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9))
def test_any_quantised_iuv_round_trips_through_onehot(seed, batch, height, width):
    gen = torch.Generator().manual_seed(seed)
    part = torch.randint(0, 25, (batch, height, width), generator=gen)
    uv = torch.randint(0, 256, (batch, height, width, 2), generator=gen) * (part > 0)[..., None]
    enc = torch.cat([part[..., None], uv], dim=-1).to(torch.uint8)
    dec = decode_iuv(enc)
    assert torch.equal(encode_iuv(onehot_to_iuv(iuv_to_onehot(dec))), enc)
    assert torch.equal(coarse_index(dec[..., 0]) > 0, part > 0)
