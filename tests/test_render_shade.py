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
    assert img is not None and img.shape[1] == 4 * 48 and img.shape[0] % 48 == 0
    assert img.reshape(-1, 3).max() > 100  # something was drawn
