"""Warp rasterizer backend (CPU and CUDA): one thread per (mesh, triangle) over its pixel bounding box.

Each thread writes ``(round(depth * 1e6) << 24) | face`` into a 64-bit z-buffer with ``atomic_min``, so the
nearest surface wins and equal depths go to the lowest face index whatever the thread order; a second kernel
resolves each pixel's key into face index, perspective-correct barycentrics and depth. The arithmetic follows
raster_torch.py operation by operation. Warp's kernel cache lives in the project cache folder (see cache.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

import torch
import warp as wp

from pipeline.render.cache import cache_subdir
from pipeline.render.fragments import DEPTH_SCALE, EMPTY_KEY, FACE_BITS, MAX_DEPTH_Q, Fragments

_state = {"ready": False}
wp.set_module_options({"enable_backward": False, "optimization_level": 3})


def warp_cache_dir() -> str:
    """The folder holding Warp's compiled kernels: ``<project cache>/warp``."""
    return str(cache_subdir("warp"))


def cuda_driver_present() -> bool:
    """Whether the NVIDIA driver library (libcuda) loads: without it Warp can only run on the CPU."""
    for name in ("libcuda.so", "libcuda.so.1", "nvcuda.dll"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


@contextlib.contextmanager
def _stderr_silenced():
    """Send file descriptor 2 to the null device for the block (Warp's native code prints there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def init_warp() -> None:
    """Point Warp's kernel cache at the project cache folder and initialise Warp (once, quietly: on a machine
    without the NVIDIA driver, Warp's "Could not find or load the NVIDIA CUDA driver" line is not printed,
    since CPU rendering is what is expected there; its errors still raise)."""
    if _state["ready"]:
        return
    path = warp_cache_dir()
    wp.config.kernel_cache_dir = path
    wp.config.log_level = wp.LOG_WARNING
    with contextlib.nullcontext() if cuda_driver_present() else _stderr_silenced():
        wp.init()
    # Warp initialised earlier by someone else (with its default cache) leaves the setting as we wrote it,
    # unresolved: point it at the versioned subfolder wp.init would have made (module builds read it).
    if wp.config.kernel_cache_dir == path:
        wp.config.kernel_cache_dir = os.path.join(path, wp.config.version)
        os.makedirs(wp.config.kernel_cache_dir, exist_ok=True)
    _state["ready"] = True


_DEPTH_SCALE = wp.constant(wp.float32(DEPTH_SCALE))
_FACE_BITS = wp.constant(FACE_BITS)
_FACE_MASK = wp.constant(wp.int64((1 << FACE_BITS) - 1))
_MAX_DEPTH_Q = wp.constant(wp.int64(MAX_DEPTH_Q))
_EMPTY = wp.constant(wp.int64(EMPTY_KEY))


@wp.func
def _edge(xa: float, ya: float, xb: float, yb: float, px: float, py: float) -> float:
    # signed doubled area of (a, b, p); same expression as raster_torch.edge_weights
    return (xb - xa) * (py - ya) - (yb - ya) * (px - xa)


@wp.func
def _raster_triangle(
    verts: wp.array2d(dtype=wp.vec3),
    face: wp.vec3i,
    b: int,
    f: int,
    height: int,
    width: int,
    zbuf: wp.array3d(dtype=wp.int64),
):
    a = verts[b, face[0]]
    c1 = verts[b, face[1]]
    c2 = verts[b, face[2]]
    if a[2] <= 0.0 or c1[2] <= 0.0 or c2[2] <= 0.0:
        return
    fx0 = wp.clamp(wp.ceil(wp.min(wp.min(a[0], c1[0]), c2[0]) - 0.5), 0.0, float(width))
    fx1 = wp.clamp(wp.floor(wp.max(wp.max(a[0], c1[0]), c2[0]) - 0.5), -1.0, float(width - 1))
    if not (fx0 <= fx1):  # also rejects NaN coordinates
        return
    fy0 = wp.clamp(wp.ceil(wp.min(wp.min(a[1], c1[1]), c2[1]) - 0.5), 0.0, float(height))
    fy1 = wp.clamp(wp.floor(wp.max(wp.max(a[1], c1[1]), c2[1]) - 0.5), -1.0, float(height - 1))
    if not (fy0 <= fy1):
        return
    area = (c1[0] - a[0]) * (c2[1] - a[1]) - (c1[1] - a[1]) * (c2[0] - a[0])
    if area == 0.0 or not wp.isfinite(area):
        return
    # perspective weights: q_i = w_i * k_i with k_i = (1 / area) / z_i (same as raster_torch.perspective_bary)
    inv_area = 1.0 / area
    k0 = inv_area / a[2]
    k1 = inv_area / c1[2]
    k2 = inv_area / c2[2]
    # pixels are inside when sign * w_i >= 0 for all three edges (sign = +1 for positive area, -1 otherwise);
    # flipping signs is exact, so this equals the torch backend's test bit for bit.
    sign = wp.where(area > 0.0, 1.0, -1.0)
    x0 = int(fx0)
    x1 = int(fx1)
    y0 = int(fy0)
    y1 = int(fy1)
    for iy in range(y0, y1 + 1):
        py = float(iy) + 0.5
        for ix in range(x0, x1 + 1):
            px = float(ix) + 0.5
            w0 = _edge(c1[0], c1[1], c2[0], c2[1], px, py)
            if sign * w0 < 0.0:
                continue
            w1 = _edge(c2[0], c2[1], a[0], a[1], px, py)
            if sign * w1 < 0.0:
                continue
            w2 = _edge(a[0], a[1], c1[0], c1[1], px, py)
            if sign * w2 < 0.0:
                continue
            depth = 1.0 / (w0 * k0 + w1 * k1 + w2 * k2)
            dq = wp.clamp(wp.int64(depth * _DEPTH_SCALE + 0.5), wp.int64(0), _MAX_DEPTH_Q)
            key = (dq << wp.int64(_FACE_BITS)) | wp.int64(f)
            if key < zbuf[b, iy, ix]:  # cheap pre-test; the atomic keeps concurrent writers correct
                wp.atomic_min(zbuf, b, iy, ix, key)


@wp.kernel
def _raster_kernel(
    verts: wp.array2d(dtype=wp.vec3),
    faces: wp.array(dtype=wp.vec3i),
    height: int,
    width: int,
    faces_per_thread: int,
    zbuf: wp.array3d(dtype=wp.int64),
):
    # thread (b, g) draws faces g*k .. g*k+k-1 of mesh b: k = F on CPU (one mesh at a time keeps its vertices
    # and its z-buffer in cache and amortises Warp's per-thread cost), k = 1 on CUDA (maximum parallelism).
    b, g = wp.tid()
    f_end = wp.min((g + 1) * faces_per_thread, faces.shape[0])
    for f in range(g * faces_per_thread, f_end):
        _raster_triangle(verts, faces[f], b, f, height, width, zbuf)


@wp.func
def _resolve_pixel(
    verts: wp.array2d(dtype=wp.vec3),
    faces: wp.array(dtype=wp.vec3i),
    zbuf: wp.array3d(dtype=wp.int64),
    b: int,
    iy: int,
    ix: int,
    face_out: wp.array3d(dtype=wp.int64),
    bary_out: wp.array3d(dtype=wp.vec3),
    depth_out: wp.array3d(dtype=wp.float32),
):
    key = zbuf[b, iy, ix]
    if key == _EMPTY:
        face_out[b, iy, ix] = wp.int64(-1)
        bary_out[b, iy, ix] = wp.vec3(0.0, 0.0, 0.0)
        depth_out[b, iy, ix] = wp.inf
        return
    f = int(key & _FACE_MASK)
    face = faces[f]
    a = verts[b, face[0]]
    c1 = verts[b, face[1]]
    c2 = verts[b, face[2]]
    px = float(ix) + 0.5
    py = float(iy) + 0.5
    w0 = _edge(c1[0], c1[1], c2[0], c2[1], px, py)
    w1 = _edge(c2[0], c2[1], a[0], a[1], px, py)
    w2 = _edge(a[0], a[1], c1[0], c1[1], px, py)
    area = (c1[0] - a[0]) * (c2[1] - a[1]) - (c1[1] - a[1]) * (c2[0] - a[0])
    inv_area = 1.0 / area
    q0 = w0 * (inv_area / a[2])
    q1 = w1 * (inv_area / c1[2])
    q2 = w2 * (inv_area / c2[2])
    s = q0 + q1 + q2
    face_out[b, iy, ix] = wp.int64(f)
    bary_out[b, iy, ix] = wp.vec3(q0 / s, q1 / s, q2 / s)
    depth_out[b, iy, ix] = 1.0 / s


@wp.kernel
def _resolve_kernel(
    verts: wp.array2d(dtype=wp.vec3),
    faces: wp.array(dtype=wp.vec3i),
    zbuf: wp.array3d(dtype=wp.int64),
    pixels_per_thread: int,
    face_out: wp.array3d(dtype=wp.int64),
    bary_out: wp.array3d(dtype=wp.vec3),
    depth_out: wp.array3d(dtype=wp.float32),
):
    # thread (b, iy, g) resolves columns g*k .. g*k+k-1 of row iy: k = W on CPU, 1 on CUDA.
    b, iy, g = wp.tid()
    x_end = wp.min((g + 1) * pixels_per_thread, zbuf.shape[2])
    for ix in range(g * pixels_per_thread, x_end):
        _resolve_pixel(verts, faces, zbuf, b, iy, ix, face_out, bary_out, depth_out)


def rasterize_warp(vertices: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> Fragments:
    """Warp backend of :func:`pipeline.render.rasterize.rasterize` (inputs already checked, float32)."""
    init_warp()
    batch, num_faces = vertices.shape[0], faces.shape[0]
    dev = vertices.device
    on_gpu = dev.type == "cuda"
    # the z-buffer of packed keys becomes the face-index output in place (each resolve thread reads its
    # pixel's key before overwriting it), which saves a (B,H,W) int64 buffer; bary and depth are written
    # at every pixel, so they need no initial fill.
    face_index = torch.full((batch, height, width), EMPTY_KEY, dtype=torch.int64, device=dev)
    bary = torch.empty((batch, height, width, 3), dtype=torch.float32, device=dev)
    depth = torch.empty((batch, height, width), dtype=torch.float32, device=dev)
    wverts = wp.from_torch(vertices, dtype=wp.vec3)
    wfaces = wp.from_torch(faces.to(torch.int32).contiguous(), dtype=wp.vec3i)
    wzbuf = wp.from_torch(face_index)
    wdev = wverts.device
    # on CUDA, launch on torch's current stream so that the kernels are ordered with torch's own work
    stream = wp.stream_from_torch(dev) if on_gpu else None
    faces_per_thread = 1 if on_gpu else num_faces
    wp.launch(
        _raster_kernel,
        dim=(batch, -(-num_faces // faces_per_thread)),
        inputs=[wverts, wfaces, height, width, faces_per_thread, wzbuf],
        device=wdev,
        stream=stream,
    )
    pixels_per_thread = 1 if on_gpu else width
    outputs = [wzbuf, wp.from_torch(bary, dtype=wp.vec3), wp.from_torch(depth)]
    wp.launch(
        _resolve_kernel,
        dim=(batch, height, -(-width // pixels_per_thread)),
        inputs=[wverts, wfaces, wzbuf, pixels_per_thread, *outputs],
        device=wdev,
        stream=stream,
    )
    return Fragments(face_index=face_index, bary=bary, depth=depth)
