"""Pure-torch rasterizer backend (reference for the Warp kernel, fallback when warp-lang is missing).

Vectorised over (triangle, pixel) pairs: every visible triangle is expanded to the pixel centres of its
clamped bounding box, chunk by chunk, and the packed (depth, face) keys are reduced into the z-buffer with
``scatter_reduce(amin)``. The arithmetic mirrors raster_warp.py operation by operation (float32), so both give
the same visible face; see rasterize.py for the conventions.
"""

from __future__ import annotations

import torch

from pipeline.render.fragments import DEPTH_SCALE, EMPTY_KEY, FACE_BITS, MAX_DEPTH_Q, Fragments

CHUNK_PAIRS = 1 << 20  # (triangle, pixel) candidates evaluated at once; bounds peak memory (~100 MB)


def edge_weights(tri: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised screen-space barycentric weights of points in triangles.

    Args:
        tri: (N,3,3) screen-space triangles (x, y, z) per corner.
        px, py: (N,) float32 sample positions in pixels.

    Returns:
        w: (N,3) edge functions (w_i: doubled signed area opposite corner i),
        area: (N,) doubled signed area.
    """
    x0, y0 = tri[:, 0, 0], tri[:, 0, 1]
    x1, y1 = tri[:, 1, 0], tri[:, 1, 1]
    x2, y2 = tri[:, 2, 0], tri[:, 2, 1]
    w0 = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
    w1 = (x0 - x2) * (py - y2) - (y0 - y2) * (px - x2)
    w2 = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    return torch.stack([w0, w1, w2], dim=-1), area


def perspective_bary(
    w: torch.Tensor, area: torch.Tensor, z: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perspective-correct barycentrics and depth from screen-space weights.

    Args:
        w: (N,3) edge weights, area: (N,) doubled signed area, z: (N,3) corner depths (> 0).

    Returns:
        bary: (N,3) float32 summing to 1, depth: (N,) float32 interpolated camera depth.
    """
    k = (1.0 / area)[:, None] / z
    q = w * k
    s = q[:, 0] + q[:, 1] + q[:, 2]
    return q / s[:, None], 1.0 / s


def _pack_key(depth: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    # round to nearest so that float noise in the interpolated depth of coplanar faces still ties
    depth_q = (depth * DEPTH_SCALE + 0.5).to(torch.int64).clamp(0, MAX_DEPTH_Q)
    return (depth_q << FACE_BITS) | face


def _pixel_bbox(tri: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """First pixel (x0, y0) and extent (nx, ny) of the pixel centres inside each triangle's clamped bbox."""
    xs, ys = tri[..., 0], tri[..., 1]
    x0 = torch.ceil(xs.amin(-1) - 0.5).clamp(0, width)
    x1 = torch.floor(xs.amax(-1) - 0.5).clamp(-1, width - 1)
    y0 = torch.ceil(ys.amin(-1) - 0.5).clamp(0, height)
    y1 = torch.floor(ys.amax(-1) - 0.5).clamp(-1, height - 1)
    nx = (x1 - x0 + 1).clamp(min=0).to(torch.int64)
    ny = (y1 - y0 + 1).clamp(min=0).to(torch.int64)
    return x0.to(torch.int64), y0.to(torch.int64), nx, ny


def _zbuffer(tri: torch.Tensor, num_faces: int, batch: int, height: int, width: int) -> torch.Tensor:
    """(B*H*W,) int64 z-buffer of packed keys for flattened triangles tri (B*F,3,3) (finite coordinates)."""
    zbuf = torch.full((batch * height * width,), EMPTY_KEY, dtype=torch.int64, device=tri.device)
    x0, y0, nx, ny = _pixel_bbox(tri, height, width)
    count = nx * ny * (tri[..., 2] > 0).all(-1)
    ids = torch.nonzero(count > 0).squeeze(1)
    tri_ids = torch.index_select(tri, 0, ids)
    _, area = edge_weights(tri_ids, tri_ids[:, 0, 0], tri_ids[:, 0, 1])
    ids = ids[area != 0]  # degenerate triangles cover nothing
    if ids.numel() == 0:
        return zbuf
    counts = count[ids]
    ends = torch.cumsum(counts, 0)
    # chunk boundaries: split the triangle list where the running pixel count crosses CHUNK_PAIRS multiples
    num_chunks = -(-int(ends[-1]) // CHUNK_PAIRS)
    marks = torch.arange(1, num_chunks, device=ends.device, dtype=torch.int64) * CHUNK_PAIRS
    cuts = torch.searchsorted(ends, marks, right=True).tolist()
    bounds = [0, *sorted(set(cuts)), ids.numel()]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi <= lo:
            continue
        sel = ids[lo:hi]
        c = counts[lo:hi]
        rep = torch.repeat_interleave(torch.arange(sel.numel(), device=sel.device), c)
        start = torch.cumsum(c, 0) - c
        off = torch.arange(int(c.sum()), device=sel.device) - start[rep]
        t = sel[rep]
        nxt = nx[t]
        px_i = x0[t] + off % nxt
        py_i = y0[t] + off // nxt
        tri_t = torch.index_select(tri, 0, t)
        w, area_t = edge_weights(tri_t, px_i.to(torch.float32) + 0.5, py_i.to(torch.float32) + 0.5)
        pos = area_t[:, None] > 0
        inside = torch.where(pos, w >= 0, w <= 0).all(-1)
        _, depth = perspective_bary(w[inside], area_t[inside], tri_t[inside, :, 2])
        t_in = t[inside]
        key = _pack_key(depth, t_in % num_faces)
        pix = (t_in // num_faces) * (height * width) + py_i[inside] * width + px_i[inside]
        zbuf.scatter_reduce_(0, pix, key, reduce="amin")
    return zbuf


def resolve_torch(zbuf: torch.Tensor, tri: torch.Tensor, num_faces: int, batch: int, height: int, width: int):
    """Turn a packed z-buffer (B*H*W,) into Fragments, recomputing barycentrics at the pixel centres."""
    frags_face = torch.full((batch * height * width,), -1, dtype=torch.int64, device=zbuf.device)
    bary = torch.zeros((batch * height * width, 3), dtype=torch.float32, device=zbuf.device)
    depth = torch.full((batch * height * width,), float("inf"), dtype=torch.float32, device=zbuf.device)
    hit = torch.nonzero(zbuf != EMPTY_KEY).squeeze(1)
    if hit.numel():
        face = zbuf[hit] & ((1 << FACE_BITS) - 1)
        b = hit // (height * width)
        rem = hit % (height * width)
        px = (rem % width).to(torch.float32) + 0.5
        py = (rem // width).to(torch.float32) + 0.5
        tri_h = tri[b * num_faces + face]
        w, area = edge_weights(tri_h, px, py)
        bary_h, depth_h = perspective_bary(w, area, tri_h[:, :, 2])
        frags_face[hit] = face
        bary[hit] = bary_h
        depth[hit] = depth_h
    return Fragments(
        face_index=frags_face.view(batch, height, width),
        bary=bary.view(batch, height, width, 3),
        depth=depth.view(batch, height, width),
    )


def rasterize_torch(vertices: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> Fragments:
    """Torch backend of :func:`pipeline.render.rasterize.rasterize` (inputs already checked, float32)."""
    batch, num_faces = vertices.shape[0], faces.shape[0]
    # a vertex with a NaN/inf coordinate is treated as behind the camera, culling its triangles (checked per
    # vertex, which is much cheaper than per triangle corner)
    finite = torch.isfinite(vertices).all(-1, keepdim=True)
    vertices = torch.where(finite, vertices, vertices.new_tensor([0.0, 0.0, -1.0]))
    tri = torch.index_select(vertices, 1, faces.long().reshape(-1)).reshape(batch * num_faces, 3, 3)
    zbuf = _zbuffer(tri, num_faces, batch, height, width)
    return resolve_torch(zbuf, tri, num_faces, batch, height, width)
