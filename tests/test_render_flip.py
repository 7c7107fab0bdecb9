"""IUV flip through the left/right symmetry: involution, agreement with rendering the mirrored mesh, cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.render.cameras import PerspectiveCamera, WeakPerspectiveCamera
from pipeline.render.flip import build_flip_table, flip_iuv
from pipeline.render.iuv import IUVRenderer, encode_iuv
from pipeline.render.meshes import sphere_dense_parts, sphere_vertex_mirror

SIZE = 96


def _rotation(ax: float, ay: float) -> torch.Tensor:
    rx = torch.tensor([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = torch.tensor([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    return (rx @ ry).float()


def mirrored_render(renderer, vertices, vertex_mirror, camera, size):
    """IUV of the mirrored mesh: camera-frame vertex i moves to the x-negated position of its mirror."""
    cam_verts = camera.to_camera(vertices)[:, vertex_mirror] * torch.tensor([-1.0, 1.0, 1.0])
    f, c = camera.focal, camera.crop_size / 2
    K = torch.tensor([[f, 0, c], [0, f, c], [0, 0, 1]]).expand(len(vertices), 3, 3)
    crop = int(camera.crop_size)
    identity = PerspectiveCamera(K, torch.eye(3).expand_as(K), torch.zeros(len(vertices), 3), (crop, crop))
    return renderer.render(cam_verts, identity, size, size)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    verts, _, parts = sphere_dense_parts(32, 48)
    mirror = sphere_vertex_mirror(32, 48)
    table = build_flip_table(parts, mirror, cache_dir=tmp_path_factory.mktemp("flip"))
    batch = torch.stack(
        [verts @ _rotation(ax, ay).T * 0.8 for ax, ay in ((0.4, 0.5), (-0.3, 2.5), (1.2, -0.7))]
    )
    camera = WeakPerspectiveCamera(torch.tensor([[0.9, 0.1, 0.0], [1.0, -0.1, 0.05], [0.8, 0.0, 0.0]]))
    renderer = IUVRenderer(parts, backend="torch")
    return renderer, table, batch, mirror, camera


def test_flip_table_shape_and_cache(scene, tmp_path):
    renderer, table, _, mirror, _ = scene
    assert table.lut.shape == (24, 256, 256, 2) and table.lut.dtype == np.uint8
    verts, _, parts = sphere_dense_parts(32, 48)
    first = build_flip_table(parts, mirror, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    again = build_flip_table(parts, mirror, cache_dir=tmp_path)
    assert np.array_equal(first.lut, again.lut) and np.array_equal(first.lut, table.lut)
    other = build_flip_table(parts, torch.arange(len(mirror)), cache_dir=tmp_path)  # different inputs
    assert len(list(tmp_path.glob("*.npz"))) == 2 and not np.array_equal(other.lut, first.lut)


def test_flip_twice_is_identity_on_foreground(scene):
    renderer, table, batch, _, camera = scene
    iuv = encode_iuv(renderer.render(batch, camera, SIZE, SIZE)).numpy()
    twice = flip_iuv(flip_iuv(iuv, table), table)
    fg = iuv[..., 0] > 0
    assert np.array_equal(twice[..., 0], iuv[..., 0])
    assert np.abs(twice.astype(int) - iuv.astype(int))[fg].max() <= 1
    single = flip_iuv(iuv[0], table)  # (H,W,3) works as well as (B,H,W,3)
    assert np.array_equal(single, flip_iuv(iuv, table)[0])


def test_flip_matches_rendering_the_mirrored_mesh(scene):
    renderer, table, batch, mirror, camera = scene
    iuv = encode_iuv(renderer.render(batch, camera, SIZE, SIZE)).numpy()
    flipped = flip_iuv(iuv, table)
    expected = encode_iuv(mirrored_render(renderer, batch, mirror, camera, SIZE)).numpy()
    fg = (flipped[..., 0] > 0) | (expected[..., 0] > 0)
    same_part = flipped[..., 0] == expected[..., 0]
    assert same_part[fg].mean() >= 0.98
    close = np.abs(flipped[..., 1:].astype(int) - expected[..., 1:].astype(int)).max(-1) <= 3
    assert (same_part & close)[fg].mean() >= 0.98
    assert set(np.unique(flipped[..., 0])) >= {3, 4}  # the left/right parts really are swapped somewhere


def test_flip_rejects_bad_input(scene):
    table = scene[1]
    with pytest.raises(ValueError, match="uint8"):
        flip_iuv(np.zeros((4, 4, 3), np.float32), table)
    with pytest.raises(ValueError, match="part index"):
        flip_iuv(np.full((4, 4, 3), 40, np.uint8), table)
