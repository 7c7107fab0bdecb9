"""Demo picture of the renderer: the default body in a few poses, front and back, as shaded | I | U | V.

Used by ``python -m stages.render_iuv --demo OUT.png``. Falls back to a synthetic sphere with four parts when
the body model package is not available, so the picture can always be made.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from pipeline.files import atomic_write_bytes
from pipeline.render import annotate
from pipeline.render.cameras import WeakPerspectiveCamera
from pipeline.render.iuv import IUVRenderer, encode_iuv
from pipeline.render.meshes import sphere_dense_parts
from pipeline.render.shade import part_palette, render_shaded

DEMO_COLUMNS = ("shaded, part colours", "I: part", "U", "V")

# (name, {SMPL joint index: axis-angle}) of the demo poses; SMPL joints: 1/2 hips, 4/5 knees,
# 16/17 shoulders, 18/19 elbows.
DEMO_POSES: tuple[tuple[str, dict[int, tuple[float, float, float]]], ...] = (
    ("rest", {}),
    ("arms down", {16: (0.0, 0.0, -1.2), 17: (0.0, 0.0, 1.2)}),
    (
        "walk",
        {
            1: (-0.5, 0.0, 0.0),
            2: (0.4, 0.0, 0.0),
            5: (0.7, 0.0, 0.0),
            16: (0.0, 0.0, -1.1),
            17: (0.0, 0.0, 1.1),
            18: (0.0, -0.6, 0.0),
            19: (0.0, 0.6, 0.0),
        },
    ),  # fmt: skip
)


def demo_poses() -> tuple[list[str], torch.Tensor]:
    """Names and (N,72) axis-angle SMPL poses of the demo."""
    poses = torch.zeros(len(DEMO_POSES), 24, 3)
    for i, (_, joints) in enumerate(DEMO_POSES):
        for j, aa in joints.items():
            poses[i, j] = torch.tensor(aa)
    return [name for name, _ in DEMO_POSES], poses.reshape(len(DEMO_POSES), 72)


def _rotation(axis: str, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    if axis == "x":
        return torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float32)
    return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float32)


def demo_meshes():
    """(N,V,3) posed vertices (metres, SMPL axes: y up, facing +z), names, dense parts, source description."""
    names, poses = demo_poses()
    try:
        from pipeline.body import load_body_model, load_dense_parts
    except ImportError:
        verts, _, parts = sphere_dense_parts(48, 64)
        scale = torch.tensor([0.35, 0.85, 0.25])
        return (verts * scale)[None], ["ellipsoid"], parts, "synthetic ellipsoid (no body model installed)"
    body = load_body_model("anny-smpl24")
    with torch.no_grad():
        out = body(betas=None, pose=poses, transl=None)
    return out.vertices.float(), names, load_dense_parts("anny-smpl24"), "anny-smpl24"


def _colourise(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H,W) uint8 -> (H,W,3) RGB uint8 with the jet colour map on the foreground, black elsewhere."""
    rgb = annotate.colour_ramp(values / 255.0, cv2.COLORMAP_JET)
    return np.where(mask[..., None], rgb, 0).astype(np.uint8)


def demo_panel(size: int = 224, backend: str = "auto") -> tuple[np.ndarray, str]:
    """(H, 4*size, 3) uint8 RGB: column headers, one row per (pose, view) with columns shaded | I | U | V,
    colour bars under U and V (0..1, jet) and the part legend (the palette of the shaded and I columns)."""
    vertices, names, parts, source = demo_meshes()
    front = _rotation("x", math.pi)  # SMPL y-up, facing +z -> camera y-down, facing the camera
    back = front @ _rotation("y", math.pi)
    views = [("front", front), ("back", back)]
    renderer = IUVRenderer(parts, backend=backend)
    palette = part_palette()
    face_colors = palette[torch.as_tensor(parts.face_part).long()]
    render_faces = torch.as_tensor(parts.faces).long()
    r2b = torch.as_tensor(parts.render_to_body).long()
    rows, labels = [], []
    for i in range(vertices.shape[0]):
        centred = vertices[i] - (vertices[i].amax(0) + vertices[i].amin(0)) / 2
        height = float(centred[:, 1].amax() - centred[:, 1].amin())
        # the body spans 90% of the crop: projected height = height * crop * s / 2
        camera = WeakPerspectiveCamera(torch.tensor([[1.8 / max(height, 1e-3), 0.0, 0.0]]), float(size))
        for view, rot in views:
            verts = (centred @ rot.T)[None]
            shaded = render_shaded(
                verts[:, r2b], render_faces, camera, size, size, backend=backend, face_colors=face_colors
            )[0].numpy()
            iuv = encode_iuv(renderer.render(verts, camera, size, size))[0].numpy()
            mask = iuv[..., 0] > 0
            part_rgb = (palette[iuv[..., 0].astype(np.int64)].numpy() * 255).astype(np.uint8)
            rows.append(
                np.concatenate(
                    [shaded, part_rgb, _colourise(iuv[..., 1], mask), _colourise(iuv[..., 2], mask)], axis=1
                )
            )
            labels.append(f"{names[i]} {view}")
    rows = [np.concatenate([annotate.row_label(r[:, :size], label, max(10.0, size / 18)), r[:, size:]], axis=1)
            for r, label in zip(rows, labels, strict=True)]  # fmt: skip
    bars = np.concatenate(
        [annotate.strip(30, 2 * size), annotate.colour_bar(size, "U"), annotate.colour_bar(size, "V")], axis=1
    )
    panel = annotate.stack_rows(
        annotate.header_row(list(DEMO_COLUMNS), size), *rows, bars, annotate.densepose_legend(4 * size)
    )
    return panel, source


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an (H,W,3) uint8 RGB image as PNG atomically (temporary file + rename)."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"write_png: OpenCV could not encode {path}")
    return atomic_write_bytes(path, data.tobytes())


def write_demo(path: str | Path, size: int = 224, backend: str = "auto") -> tuple[Path, str]:
    """Render the demo panel (see :func:`demo_panel`) to ``path`` (PNG); returns the path and mesh source."""
    panel, source = demo_panel(size=size, backend=backend)
    return write_png(path, panel), source
