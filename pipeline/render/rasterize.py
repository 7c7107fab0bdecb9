"""Batched z-buffer rasterization of B meshes that share one face list.

Conventions (shared by every backend, so that they agree pixel for pixel):

* Screen-space vertices are (x_pixel, y_pixel, z_depth): x grows to the right, y grows downwards, pixel
  (row i, column j) covers [j, j+1) x [i, i+1) and is sampled at its centre (j + 0.5, i + 0.5). z is the
  camera-frame depth along the optical axis (metres for our cameras; it must be > 0 to be visible).
* A pixel is covered by a triangle when its centre lies inside or on the edges (either winding; no back-face
  culling). Triangles with any vertex at z <= 0 (at or behind the camera) and degenerate triangles are culled.
* Visibility: the smallest key ``(round(depth * 1e6) << 24) | face`` wins, i.e. depth quantised to micrometres
  (for metre inputs) with ties going to the lowest face index; the result does not depend on the order in
  which triangles are drawn.
* Barycentrics are perspective-correct: with screen-space weights w_i, b_i = (w_i / z_i) / sum_j (w_j / z_j),
  and depth = 1 / sum_j (w_j / z_j).

pytorch3d / nvdiffrast cannot be installed here (see docs/design.md), hence this small rasterizer of our own.
"""

from __future__ import annotations

import importlib.util

import torch

from pipeline.render.fragments import MAX_FACES, Fragments, empty_fragments

__all__ = ["BACKENDS", "Fragments", "WarpInitError", "rasterize", "resolve_backend", "warp_available"]

BACKENDS = ("auto", "warp", "torch")


class WarpInitError(RuntimeError):
    """warp-lang is installed but does not import or initialise; the message names the cause."""


_warp_state: dict[str, str | None] = {}  # "problem": None once Warp has started, else the error's text


def warp_installed() -> bool:
    """Whether the warp-lang package is installed (found on the path; not imported)."""
    return importlib.util.find_spec("warp") is not None


def _start_warp() -> str | None:
    """Import and initialise Warp once; None when it works, else the failure as text."""
    if "problem" not in _warp_state:
        try:
            from pipeline.render.raster_warp import init_warp

            init_warp()
            _warp_state["problem"] = None
        except Exception as err:  # noqa: BLE001 - kept and raised as WarpInitError by every caller
            _warp_state["problem"] = f"{type(err).__name__}: {err}"
    return _warp_state["problem"]


def warp_available() -> bool:
    """True when warp-lang imports and initialises (its kernel cache set to the project cache folder);
    False when it is not installed. An installed Warp that fails to start raises :class:`WarpInitError`
    naming the cause: a broken install never turns silently into the (much slower) torch backend."""
    if not warp_installed():
        return False
    problem = _start_warp()
    if problem is not None:
        raise WarpInitError(
            f"rasterize: warp-lang is installed but failed to initialise ({problem}); repair it "
            "(pip install -c requirements.lock warp-lang) or choose the torch rasterizer explicitly "
            "(--backend torch)"
        )
    return True


def resolve_backend(backend: str) -> str:
    """Map "auto" to "warp" when warp-lang is installed and starts, to "torch" when it is not installed;
    check the name. "torch" never touches Warp; "auto" and "warp" raise WarpInitError for a broken Warp."""
    if backend not in BACKENDS:
        raise ValueError(f"rasterize: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "warp" if warp_available() else "torch"
    if backend == "warp" and not warp_available():
        raise ImportError(
            "rasterize: backend='warp' needs a working warp-lang package (pip install warp-lang)"
        )
    return backend


def _check_inputs(vertices: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> None:
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"rasterize: vertices must be (B,V,3), got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"rasterize: faces must be (F,3), got {tuple(faces.shape)}")
    if faces.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"rasterize: faces must be an integer tensor, got {faces.dtype}")
    if height <= 0 or width <= 0:
        raise ValueError(f"rasterize: image size must be positive, got {height}x{width}")
    if faces.shape[0] >= MAX_FACES:
        raise ValueError(f"rasterize: at most {MAX_FACES - 1} faces fit the depth key, got {faces.shape[0]}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= vertices.shape[1]):
        raise IndexError(
            f"rasterize: face indices must lie in [0, {vertices.shape[1]}), "
            f"got range [{int(faces.min())}, {int(faces.max())}]"
        )


def rasterize(
    vertices: torch.Tensor, faces: torch.Tensor, height: int, width: int, backend: str = "auto"
) -> Fragments:
    """Rasterize B meshes sharing one face list into an H x W z-buffer.

    Args:
        vertices: (B,V,3) float screen-space vertices (x_pixel, y_pixel, z_depth > 0), see module docstring.
        faces: (F,3) int64 (or int32) vertex indices, shared by all B meshes.
        height, width: output size in pixels.
        backend: "auto" (warp when importable, else torch), "warp" or "torch".

    Returns:
        Fragments on the device of ``vertices``. An empty face list, B = 0 or a mesh entirely out of frame or
        behind the camera gives empty fragments (face -1 everywhere), not an error.
    """
    _check_inputs(vertices, faces, height, width)
    name = resolve_backend(backend)
    batch = vertices.shape[0]
    if batch == 0 or faces.shape[0] == 0:
        return empty_fragments(batch, height, width, vertices.device)
    vertices = vertices.detach().to(torch.float32).contiguous()
    faces = faces.to(device=vertices.device)
    if name == "warp":
        from pipeline.render.raster_warp import rasterize_warp

        return rasterize_warp(vertices, faces, height, width)
    from pipeline.render.raster_torch import rasterize_torch

    return rasterize_torch(vertices, faces, height, width)
