"""Small synthetic meshes for tests, benchmarks and demos that must not need a body model."""

from __future__ import annotations

import math

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
