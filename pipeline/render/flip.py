"""Horizontal flip of IUV maps through the body's left/right symmetry.

Flipping an image of a person must give the IUV map of the mirrored person: columns are mirrored, every part
becomes its mirror part (PART_FLIP) and every (u, v) becomes the UV coordinate of the mirrored surface point
in the mirror part's chart. The last step is a look-up table over the uint8 UV grid, (24, 256, 256, 2) uint8,
``lut[p - 1, u8, v8] = (u8', v8')``.

Building the table: each render face of part p is matched to its mirror face (the face of part PART_FLIP[p]
over the mirrored body vertices), which gives every corner of the face the UV of its mirror point. The faces
of part p are then rasterized in UV space at 256 x 256 (with our own rasterizer) and the mirrored UV
interpolated barycentrically, so the map is piecewise affine and flipping twice returns the original UV up
to uint8 rounding. Grid cells outside part p's chart take the value of the nearest covered cell (scipy
cKDTree); parts that have no faces keep the identity map.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from pipeline.body.constants import NUM_PARTS, PART_FLIP
from pipeline.files import atomic_output
from pipeline.render.cache import cache_subdir
from pipeline.render.iuv import DensePartsLike
from pipeline.render.rasterize import rasterize

LUT_SIZE = 256
_TABLE_VERSION = b"flip-table-v1"  # bump when the construction changes, to invalidate cached tables


@dataclass
class FlipTable:
    """lut: (24,256,256,2) uint8, lut[p-1, u8, v8] = mirrored (u8, v8); part_flip: (25,) uint8 mirror part."""

    lut: np.ndarray
    part_flip: np.ndarray


def _mirror_corner_uv(
    dense_parts: DensePartsLike, vertex_mirror: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(Fr,3,2) mirrored UV of every render-face corner and (Fr,) bool: found a mirror for every corner."""
    r2b = np.asarray(dense_parts.render_to_body, dtype=np.int64)
    faces = np.asarray(dense_parts.faces, dtype=np.int64)
    face_part = np.asarray(dense_parts.face_part, dtype=np.int64)
    uv = np.asarray(dense_parts.uv, dtype=np.float32)
    vpart = np.asarray(dense_parts.part, dtype=np.int64)
    part_flip = np.asarray(PART_FLIP, dtype=np.int64)
    body_faces = r2b[faces]  # (Fr,3)
    by_key = {(int(p), *sorted(tri)): f for f, (p, tri) in enumerate(zip(face_part, body_faces.tolist()))}
    # fallback for faces whose mirror face is missing: a render vertex of the mirror part at the mirror vertex
    by_vertex = {(int(p), int(b)): r for r, (p, b) in enumerate(zip(vpart, r2b))}
    out = np.zeros((faces.shape[0], 3, 2), dtype=np.float32)
    ok = np.ones(faces.shape[0], dtype=bool)
    mirrored = vertex_mirror[body_faces]
    for f in range(faces.shape[0]):
        mp = int(part_flip[face_part[f]])
        g = by_key.get((mp, *sorted(mirrored[f].tolist())))
        for c in range(3):
            target = int(mirrored[f, c])
            if g is not None:
                corner = int(np.nonzero(body_faces[g] == target)[0][0])
                out[f, c] = uv[faces[g, corner]]
                continue
            r = by_vertex.get((mp, target))
            if r is None:
                ok[f] = False
                break
            out[f, c] = uv[r]
    return out, ok


def _fill_part(
    corner_uv: np.ndarray, corner_target: np.ndarray, backend: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """Rasterize one part's faces in UV space: (256,256,2) mirrored UV indexed [u8, v8], covered mask."""
    if corner_uv.shape[0] == 0:
        return None
    n = corner_uv.shape[0]
    screen = np.concatenate([corner_uv * (LUT_SIZE - 1) + 0.5, np.ones((n, 3, 1), np.float32)], axis=-1)
    verts = torch.from_numpy(screen.reshape(1, n * 3, 3).astype(np.float32))
    faces = torch.arange(n * 3, dtype=torch.int64).reshape(n, 3)
    frags = rasterize(verts, faces, LUT_SIZE, LUT_SIZE, backend=backend)
    face = frags.face_index[0].numpy()
    covered = face >= 0
    target = torch.from_numpy(corner_target)[frags.face_index[0].clamp(min=0)]  # (256,256,3,2) rows = v
    grid = (frags.bary[0][..., None] * target).sum(-2).numpy()
    return grid.transpose(1, 0, 2), covered.T  # index [u8, v8]


def build_flip_table_uncached(
    dense_parts: DensePartsLike, vertex_mirror: np.ndarray | torch.Tensor, backend: str = "auto"
) -> FlipTable:
    """Build the (24,256,256,2) UV mirror table (see module docstring); no caching."""
    mirror = np.asarray(vertex_mirror, dtype=np.int64)
    r2b = np.asarray(dense_parts.render_to_body, dtype=np.int64)
    if r2b.size and int(r2b.max()) >= mirror.shape[0]:
        raise ValueError(
            f"build_flip_table: render_to_body refers to body vertex {int(r2b.max())} but vertex_mirror "
            f"has only {mirror.shape[0]} entries"
        )
    corner_target, ok = _mirror_corner_uv(dense_parts, mirror)
    corner_uv = np.asarray(dense_parts.uv, dtype=np.float32)[np.asarray(dense_parts.faces, dtype=np.int64)]
    face_part = np.asarray(dense_parts.face_part, dtype=np.int64)
    axis = np.arange(LUT_SIZE, dtype=np.float32) / (LUT_SIZE - 1)
    identity = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)  # [u8, v8] -> (u, v)
    lut = np.empty((NUM_PARTS, LUT_SIZE, LUT_SIZE, 2), dtype=np.uint8)
    for p in range(1, NUM_PARTS + 1):
        sel = (face_part == p) & ok
        filled = _fill_part(corner_uv[sel], corner_target[sel], backend)
        if filled is None or not filled[1].any():
            table = identity
        else:
            grid, covered = filled
            table = grid.copy()
            if not covered.all():
                known = np.argwhere(covered)
                _, nearest = cKDTree(known).query(np.argwhere(~covered))
                table[~covered] = grid[tuple(known[nearest].T)]
        lut[p - 1] = np.clip(np.rint(table * 255.0), 0, 255).astype(np.uint8)
    return FlipTable(lut=lut, part_flip=np.asarray(PART_FLIP, dtype=np.uint8))


def flip_table_key(dense_parts: DensePartsLike, vertex_mirror: np.ndarray | torch.Tensor) -> str:
    """Hex digest identifying a flip table by its inputs (used as the cache file name)."""
    h = hashlib.sha256(_TABLE_VERSION)
    for name in ("render_to_body", "part", "uv", "faces", "face_part"):
        arr = np.ascontiguousarray(np.asarray(getattr(dense_parts, name)))
        h.update(name.encode() + str(arr.dtype).encode() + str(arr.shape).encode() + arr.tobytes())
    mirror = np.ascontiguousarray(np.asarray(vertex_mirror, dtype=np.int64))
    h.update(b"mirror" + mirror.tobytes())
    return h.hexdigest()[:24]


def build_flip_table(
    dense_parts: DensePartsLike,
    vertex_mirror: np.ndarray | torch.Tensor,
    cache_dir: str | Path | None = None,
    backend: str = "auto",
) -> FlipTable:
    """The UV mirror table for ``dense_parts`` and the body's ``vertex_mirror`` (V,), cached as
    ``<project cache>/flip_tables/<hash of the inputs>.npz`` (or under ``cache_dir``)."""
    folder = Path(cache_dir) if cache_dir is not None else cache_subdir("flip_tables")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{flip_table_key(dense_parts, vertex_mirror)}.npz"
    if path.exists():
        with np.load(path) as data:
            return FlipTable(lut=data["lut"], part_flip=data["part_flip"])
    table = build_flip_table_uncached(dense_parts, vertex_mirror, backend=backend)
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, lut=table.lut, part_flip=table.part_flip)
    return table


def flip_iuv(iuv: np.ndarray, table: FlipTable) -> np.ndarray:
    """Mirror a uint8 IUV map left <-> right: (H,W,3) or (B,H,W,3) uint8 -> same shape uint8."""
    iuv = np.asarray(iuv)
    if iuv.dtype != np.uint8 or iuv.ndim not in (3, 4) or iuv.shape[-1] != 3:
        raise ValueError(f"flip_iuv: expected (H,W,3) or (B,H,W,3) uint8, got {iuv.shape} {iuv.dtype}")
    mirrored = iuv[..., ::-1, :]
    part = mirrored[..., 0]
    if part.size and int(part.max()) > NUM_PARTS:
        raise ValueError(f"flip_iuv: part index {int(part.max())} > {NUM_PARTS} in channel 0")
    out = np.zeros_like(iuv)
    fg = part > 0
    p = part[fg].astype(np.int64)
    out[..., 0][fg] = table.part_flip[p]
    out[..., 1:][fg] = table.lut[p - 1, mirrored[..., 1][fg], mirrored[..., 2][fg]]
    return out
