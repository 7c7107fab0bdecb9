"""Shaded RGB rendering and the demo stage."""

from __future__ import annotations

import cv2
import torch

from pipeline.render.cameras import WeakPerspectiveCamera
from pipeline.render.meshes import uv_sphere
from pipeline.render.shade import part_palette, render_shaded


def test_shaded_sphere_is_lit_from_the_light_and_keeps_background():
    verts, faces = uv_sphere(16, 24)
    camera = WeakPerspectiveCamera(torch.tensor([[1.0, 0.0, 0.0]]))
    background = torch.full((40, 40, 3), 7, dtype=torch.uint8)
    img = render_shaded(
        verts[None] * 0.6, faces, camera, 40, 40, backend="torch", light_direction=(0.0, 0.0, -1.0),
        vertex_colors=torch.ones_like(verts), background=background, ambient=0.2, diffuse=0.8,
    )  # fmt: skip
    assert img.shape == (1, 40, 40, 3) and img.dtype == torch.uint8
    assert torch.all(img[0, 0, 0] == 7)  # corner: background
    centre, rim = img[0, 20, 20].float().mean(), img[0, 20, 9].float().mean()
    assert centre > 240 and rim < centre - 30  # facing the light is brighter than grazing
    flat = render_shaded(verts[None] * 0.6, faces, camera, 40, 40, backend="torch", smooth=False,
                         face_colors=torch.tensor([[1.0, 0.0, 0.0]]).expand(len(faces), 3))  # fmt: skip
    assert flat[0, 20, 20, 0] > 200 and flat[0, 20, 20, 1] == 0


def test_palette_has_distinct_part_colours():
    pal = part_palette()
    assert pal.shape == (25, 3) and torch.all(pal[0] == 0)
    assert len({tuple((pal[i] * 255).round().int().tolist()) for i in range(25)}) == 25


def test_demo_stage_writes_a_png(tmp_path):
    from stages.render_iuv import main

    out = tmp_path / "demo.png"
    assert main(["--demo", str(out), "--size", "48", "--backend", "torch"]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] == 4 * 48 and img.shape[0] > 6 * 48  # + titles, bars, legend
    assert img.reshape(-1, 3).max() > 100  # something was drawn


def test_flat_shading_equals_the_per_pixel_lambert_formula():
    """The flat path colours faces once and gathers; it must equal shading every pixel by its face normal."""
    from pipeline.render.rasterize import rasterize
    from pipeline.render.shade import face_normals, shade

    verts, faces = uv_sphere(12, 16)
    verts = torch.stack([verts * 0.6, verts * 0.4 + 0.1])  # two meshes in the batch
    camera = WeakPerspectiveCamera(torch.tensor([[1.0, 0.0, 0.0], [1.2, 0.1, -0.1]]))
    frags = rasterize(camera.to_screen(verts, 32, 32), faces, 32, 32, backend="torch")
    colours = torch.rand(2, len(faces), 3, generator=torch.Generator().manual_seed(0))
    background = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    light, ambient, diffuse = (0.3, -0.2, -1.0), 0.3, 0.7
    got = shade(frags, camera.to_camera(verts), faces, face_colors=colours, background=background,
                light_direction=light, ambient=ambient, diffuse=diffuse, smooth=False)  # fmt: skip
    face = frags.face_index.clamp(min=0)
    b = torch.arange(2)[:, None, None]
    unit = torch.nn.functional.normalize(torch.tensor(light), dim=0)
    normal = face_normals(camera.to_camera(verts), faces)[b, face]
    rgb = (colours[b, face] * (ambient + diffuse * (normal @ unit).abs())[..., None]).clamp(0, 1) * 255.0
    want = torch.where(frags.face_index[..., None] >= 0, rgb, background.float()).round().to(torch.uint8)
    assert (frags.face_index >= 0).sum() > 100 and torch.equal(got, want)
