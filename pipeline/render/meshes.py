"""Small synthetic meshes for tests, benchmarks and demos that must not need a body model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def uv_sphere(n_lat: int, n_lon: int, radius: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A UV sphere centred at the origin, poles on the y axis.

    Vertex order: north pole (0), then rings i = 1..n_lat-1 (polar angle theta = pi * i / n_lat) of
    n_lon vertices each, longitude phi = 2 pi j / n_lon measured from +x towards +z, then the south pole.
    Mirroring x -> -x maps longitude j to (n_lon/2 - j) mod n_lon, so the mesh is exactly symmetric when
    n_lon is even.

    Returns:
        vertices (V,3) float32 in the sphere's units, faces (F,3) int64 with F = 2 n_lon (n_lat - 1).
    """
    if n_lat < 2 or n_lon < 3:
        raise ValueError(f"uv_sphere: need n_lat >= 2 and n_lon >= 3, got {n_lat}, {n_lon}")
    theta = torch.arange(1, n_lat, dtype=torch.float64) * math.pi / n_lat
    phi = torch.arange(n_lon, dtype=torch.float64) * 2 * math.pi / n_lon
    st, ct = torch.sin(theta)[:, None], torch.cos(theta)[:, None]
    ring = torch.stack(
        [st * torch.cos(phi)[None], ct.expand(-1, n_lon), st * torch.sin(phi)[None]], dim=-1
    ).reshape(-1, 3)
    poles = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
    verts = torch.cat([poles[:1], ring, poles[1:]])
    south = verts.shape[0] - 1

    def rv(i: int, j: int) -> int:  # ring i in 0..n_lat-2, longitude j
        return 1 + i * n_lon + j % n_lon

    faces = []
    for j in range(n_lon):
        faces.append((0, rv(0, j + 1), rv(0, j)))
        faces.append((south, rv(n_lat - 2, j), rv(n_lat - 2, j + 1)))
        for i in range(n_lat - 2):
            a, b, c, d = rv(i, j), rv(i, j + 1), rv(i + 1, j), rv(i + 1, j + 1)
            faces.append((a, b, d))
            faces.append((a, d, c))
    return (verts * radius).to(torch.float32), torch.tensor(faces, dtype=torch.int64)


@dataclass
class SyntheticDenseParts:
    """A DenseParts-shaped table for meshes that are not a body (same fields as pipeline.body.DenseParts)."""

    render_to_body: torch.Tensor  # (R,) int64
    part: torch.Tensor  # (R,) int64 in 1..24
    uv: torch.Tensor  # (R,2) float32 in [0, 1]
    faces: torch.Tensor  # (Fr,3) int64 over render vertices
    face_part: torch.Tensor  # (Fr,) int64 in 1..24


def sphere_vertex_mirror(n_lat: int, n_lon: int) -> torch.Tensor:
    """(V,) index of the x -> -x mirror of each vertex of :func:`uv_sphere` (n_lon must be even)."""
    if n_lon % 2:
        raise ValueError(f"sphere_vertex_mirror: n_lon must be even for a symmetric sphere, got {n_lon}")
    j = torch.arange(n_lon)
    ring = (n_lon // 2 - j) % n_lon
    rings = (torch.arange(n_lat - 1)[:, None] * n_lon + ring[None] + 1).reshape(-1)
    return torch.cat([torch.tensor([0]), rings, torch.tensor([1 + (n_lat - 1) * n_lon])])


# part of each quarter of the sphere and the longitude interval of its UV chart
_SPHERE_CHARTS = {3: (-0.5 * math.pi, 0.5 * math.pi), 4: (0.5 * math.pi, 1.5 * math.pi),
                  2: (0.0, math.pi), 1: (math.pi, 2.0 * math.pi)}  # fmt: skip


def sphere_dense_parts(n_lat: int, n_lon: int) -> tuple[torch.Tensor, torch.Tensor, SyntheticDenseParts]:
    """A UV sphere cut into four mirror-consistent DensePose parts, with a UV chart per part.

    Upper hemisphere: part 3 where x > 0, part 4 where x < 0 (PART_FLIP swaps them); lower hemisphere: part 2
    where z > 0, part 1 where z < 0 (each its own mirror). In each part u runs along the longitude across the
    part's half-turn and v along the latitude; the poles get u = 0.5. n_lat must be even and n_lon a multiple
    of 4 so that part borders follow mesh edges.

    Returns:
        vertices (V,3) float32 (unit sphere), faces (F,3) int64, and the dense parts over render vertices
        (vertices duplicated along part seams).
    """
    if n_lat % 2 or n_lon % 4:
        raise ValueError(f"sphere_dense_parts: need even n_lat and n_lon % 4 == 0, got {n_lat}, {n_lon}")
    verts, faces = uv_sphere(n_lat, n_lon)
    v64 = verts.double()
    theta = torch.acos(v64[:, 1].clamp(-1, 1))
    phi = torch.atan2(v64[:, 2], v64[:, 0]) % (2 * math.pi)
    centroid = v64[faces].mean(1)
    upper = centroid[:, 1] > 0
    face_part = torch.where(
        upper, torch.where(centroid[:, 0] > 0, 3, 4), torch.where(centroid[:, 2] > 0, 2, 1)
    ).long()
    keys: dict[tuple[int, int], int] = {}
    r2b, rpart, ruv, rfaces = [], [], [], []
    for f in range(faces.shape[0]):
        p = int(face_part[f])
        lo, hi = _SPHERE_CHARTS[p]
        corners = []
        for vid in faces[f].tolist():
            key = (vid, p)
            if key not in keys:
                pole = abs(float(v64[vid, 1])) > 1 - 1e-9
                ph = float(phi[vid])
                while ph < lo - 1e-6:
                    ph += 2 * math.pi
                while ph > hi + 1e-6:
                    ph -= 2 * math.pi
                u = 0.5 if pole else (ph - lo) / (hi - lo)
                t = float(theta[vid])
                v = t / (0.5 * math.pi) if p in (3, 4) else (t - 0.5 * math.pi) / (0.5 * math.pi)
                keys[key] = len(r2b)
                r2b.append(vid)
                rpart.append(p)
                ruv.append((min(max(u, 0.0), 1.0), min(max(v, 0.0), 1.0)))
            corners.append(keys[key])
        rfaces.append(corners)
    parts = SyntheticDenseParts(
        render_to_body=torch.tensor(r2b, dtype=torch.int64),
        part=torch.tensor(rpart, dtype=torch.int64),
        uv=torch.tensor(ruv, dtype=torch.float32),
        faces=torch.tensor(rfaces, dtype=torch.int64),
        face_part=face_part,
    )
    return verts, faces, parts
