"""The renderer on the real posed body (skipped until pipeline.body provides the model)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

body_api = pytest.importorskip("pipeline.body")
if not hasattr(body_api, "load_body_model"):
    pytest.skip("pipeline.body has no body model yet", allow_module_level=True)

from pipeline.render.cameras import PerspectiveCamera, WeakPerspectiveCamera  # noqa: E402
from pipeline.render.flip import build_flip_table, flip_iuv  # noqa: E402
from pipeline.render.iuv import IUVRenderer, encode_iuv  # noqa: E402
from pipeline.render.rasterize import warp_available  # noqa: E402

SIZE = 112


@pytest.fixture(scope="module")
def posed():
    """Four randomly but plausibly posed bodies facing the camera (one seen from behind), camera, parts."""
    body = body_api.load_body_model("anny-smpl24")
    parts = body_api.load_dense_parts("anny-smpl24")
    gen = torch.Generator().manual_seed(0)
    pose = torch.randn(4, 24, 3, generator=gen) * 0.25
    pose[:, 0] = torch.tensor([math.pi, 0.0, 0.0])  # SMPL y-up -> camera y-down, facing the camera
    pose[3, 0] = torch.tensor([0.0, 0.0, math.pi])  # seen from behind
    with torch.no_grad():
        out = body(betas=torch.randn(4, 10, generator=gen) * 0.5, pose=pose.reshape(4, 72))
    verts = out.vertices.float()
    verts = verts - verts.mean(1, keepdim=True)
    camera = WeakPerspectiveCamera(
        torch.tensor([[0.9, 0.0, 0.0], [1.0, 0.05, 0.05], [0.8, -0.05, 0.0], [0.9, 0, 0]])
    )
    return body, parts, verts, camera


@pytest.mark.skipif(not warp_available(), reason="no warp")
def test_warp_and_torch_agree_on_posed_bodies(posed):
    _, parts, verts, camera = posed
    warp_r, torch_r = IUVRenderer(parts, backend="warp"), IUVRenderer(parts, backend="torch")
    a, b = warp_r.rasterize(verts, camera, SIZE, SIZE), torch_r.rasterize(verts, camera, SIZE, SIZE)
    assert (a.face_index >= 0).float().mean() > 0.1
    assert (a.face_index == b.face_index).float().mean() >= 0.9999
    ia, ib = warp_r.render(verts, camera, SIZE, SIZE), torch_r.render(verts, camera, SIZE, SIZE)
    same = ia[..., 0] == ib[..., 0]
    assert (ia[..., 1:] - ib[..., 1:]).abs()[same].max() < 1e-3


def test_body_iuv_shows_many_parts(posed):
    _, parts, verts, camera = posed
    iuv = IUVRenderer(parts, backend="auto").render(verts, camera, SIZE, SIZE)
    seen = set(iuv[..., 0].long().unique().tolist())
    assert len(seen) >= 15 and seen <= set(range(25))


def test_flip_agrees_with_rendering_the_mirrored_body(posed):
    body, parts, verts, camera = posed
    mirror = body.vertex_mirror
    table = build_flip_table(parts, mirror)
    renderer = IUVRenderer(parts, backend="auto")
    iuv = encode_iuv(renderer.render(verts, camera, SIZE, SIZE)).numpy()
    flipped = flip_iuv(iuv, table)
    cam_verts = camera.to_camera(verts)[:, mirror] * torch.tensor([-1.0, 1.0, 1.0])
    f, c = camera.focal, camera.crop_size / 2
    K = torch.tensor([[f, 0, c], [0, f, c], [0, 0, 1]]).expand(len(verts), 3, 3)
    crop = int(camera.crop_size)
    identity = PerspectiveCamera(K, torch.eye(3).expand_as(K), torch.zeros(len(verts), 3), (crop, crop))
    expected = encode_iuv(renderer.render(cam_verts, identity, SIZE, SIZE)).numpy()
    fg = (flipped[..., 0] > 0) | (expected[..., 0] > 0)
    same = flipped[..., 0] == expected[..., 0]
    assert same[fg].mean() >= 0.98
    close = np.abs(flipped[..., 1:].astype(int) - expected[..., 1:].astype(int)).max(-1) <= 8
    assert (same & close)[fg].mean() >= 0.95
    twice = flip_iuv(flipped, table)
    assert np.array_equal(twice[..., 0], iuv[..., 0])
    assert (np.abs(twice.astype(int) - iuv.astype(int)).max(-1) <= 2)[iuv[..., 0] > 0].mean() >= 0.99
