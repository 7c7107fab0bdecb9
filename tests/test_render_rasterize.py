"""Rasterizer: known answers, tie rule, perspective-correct barycentrics, edge cases, Warp == torch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.render.cache import project_cache_dir
from pipeline.render.meshes import uv_sphere
from pipeline.render.rasterize import rasterize, warp_available

BACKENDS = ["torch", pytest.param("warp", marks=pytest.mark.skipif(not warp_available(), reason="no warp"))]


def _tri(*rows: tuple[float, float, float]) -> torch.Tensor:
    return torch.tensor([rows], dtype=torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_triangle_known_coverage_and_barycentrics(backend):
    verts = _tri((1.0, 1.0, 2.0), (9.0, 1.0, 2.0), (1.0, 9.0, 2.0))
    frags = rasterize(verts, torch.tensor([[0, 1, 2]]), 10, 10, backend=backend)
    ys, xs = torch.meshgrid(torch.arange(10), torch.arange(10), indexing="ij")
    # pixel centres (x + .5, y + .5) inside or on the edges x >= 1, y >= 1, x + y <= 10
    expected = (xs + 0.5 >= 1) & (ys + 0.5 >= 1) & (xs + ys + 1 <= 10)
    assert torch.equal(frags.face_index[0] == 0, expected)
    assert torch.equal(frags.face_index[0][~expected], torch.full(((~expected).sum(),), -1))
    torch.testing.assert_close(frags.bary[0, 1, 1], torch.tensor([0.875, 0.0625, 0.0625]))
    torch.testing.assert_close(frags.bary[0, 3, 5], torch.tensor([1 - 4.5 / 8 - 2.5 / 8, 4.5 / 8, 2.5 / 8]))
    assert torch.allclose(frags.depth[0][expected], torch.tensor(2.0))
    assert torch.isinf(frags.depth[0][~expected]).all()
    assert torch.all(frags.bary[0][~expected] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_overlapping_triangles_nearest_wins_and_ties_go_to_lowest_face(backend):
    verts = _tri(
        (0.0, 0.0, 3.0), (8.0, 0.0, 3.0), (0.0, 8.0, 3.0),  # face 0, far
        (0.0, 0.0, 1.0), (8.0, 0.0, 1.0), (0.0, 8.0, 1.0),  # face 1, same footprint, near
        (0.0, 0.0, 3.0), (8.0, 0.0, 3.0), (8.0, 8.0, 3.0),  # face 2, ties with face 0 where both cover
    )  # fmt: skip
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    frags = rasterize(verts, faces, 8, 8, backend=backend)
    fi = frags.face_index[0]
    assert fi[1, 1] == 1 and fi[0, 0] == 1  # near face hides the far ones
    assert fi[6, 6] == 2  # only face 2 covers the lower right
    # drop the near face: where faces 0 and 2 overlap at equal depth, face 0 (lower index) wins
    frags2 = rasterize(verts, faces[[0, 2]], 8, 8, backend=backend)
    assert frags2.face_index[0, 0, 4] == 0 and frags2.face_index[0, 3, 4] == 0
    # and reversing the face order does not change the winner's identity: the lower index still wins
    frags3 = rasterize(verts, faces[[2, 0]], 8, 8, backend=backend)
    assert frags3.face_index[0, 0, 4] == 0  # face 0 of the reordered list is the old face 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_barycentrics_are_perspective_correct(backend):
    f, c = 50.0, 16.0
    points = torch.tensor([[-0.3, -0.2, 1.0], [0.4, -0.25, 3.0], [0.0, 0.5, 2.0]])
    screen = torch.cat([points[:, :2] / points[:, 2:] * f + c, points[:, 2:]], dim=-1)[None]
    frags = rasterize(screen, torch.tensor([[0, 1, 2]]), 32, 32, backend=backend)
    hit = frags.face_index[0] == 0
    assert hit.sum() > 50
    surface = frags.bary[0][hit] @ points  # the 3D point each pixel sees
    ys, xs = torch.nonzero(hit, as_tuple=True)
    centres = torch.stack([xs + 0.5, ys + 0.5], dim=-1).float()
    torch.testing.assert_close(surface[:, :2] / surface[:, 2:] * f + c, centres, atol=2e-3, rtol=0)
    torch.testing.assert_close(frags.depth[0][hit], surface[:, 2], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_culling_and_empty_inputs_give_empty_fragments(backend):
    faces = torch.tensor([[0, 1, 2]])
    behind = _tri((1.0, 1.0, -1.0), (9.0, 1.0, 2.0), (1.0, 9.0, 2.0))
    assert (rasterize(behind, faces, 10, 10, backend=backend).face_index == -1).all()
    out_of_frame = _tri((100.0, 100.0, 2.0), (140.0, 100.0, 2.0), (100.0, 140.0, 2.0))
    frags = rasterize(out_of_frame, faces, 10, 12, backend=backend)
    assert frags.face_index.shape == (1, 10, 12) and (frags.face_index == -1).all()
    assert torch.isinf(frags.depth).all()
    empty_faces = rasterize(behind, torch.zeros((0, 3), dtype=torch.int64), 5, 6, backend=backend)
    assert empty_faces.face_index.shape == (1, 5, 6) and (empty_faces.face_index == -1).all()
    no_meshes = rasterize(torch.zeros((0, 3, 3)), faces, 5, 6, backend=backend)
    assert no_meshes.face_index.shape == (0, 5, 6) and no_meshes.bary.shape == (0, 5, 6, 3)
    degenerate = _tri((1.0, 1.0, 1.0), (5.0, 5.0, 1.0), (9.0, 9.0, 1.0))
    assert (rasterize(degenerate, faces, 10, 10, backend=backend).face_index == -1).all()


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="vertices must be"):
        rasterize(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), 4, 4, backend="torch")
    with pytest.raises(IndexError, match="face indices"):
        rasterize(torch.zeros(1, 3, 3), torch.tensor([[0, 1, 3]]), 4, 4, backend="torch")
    with pytest.raises(ValueError, match="backend"):
        rasterize(torch.zeros(1, 3, 3), torch.tensor([[0, 1, 2]]), 4, 4, backend="opengl")


def random_sphere_batch(batch: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Bumpy, randomly rotated spheres in front of a camera, in screen space (batch, V, 3)."""
    gen = torch.Generator().manual_seed(seed)
    verts, faces = uv_sphere(24, 36)
    bumps = 1 + 0.15 * torch.rand(batch, verts.shape[0], 1, generator=gen)
    angles = torch.rand(batch, 3, generator=gen) * 2 * math.pi
    out = []
    for b in range(batch):
        ax, ay, az = angles[b].tolist()
        rx = torch.tensor([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
        ry = torch.tensor([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
        p = (verts * bumps[b]) @ (ry @ rx).T + torch.tensor([0.1, -0.1, 4.0])
        out.append(torch.cat([p[:, :2] / p[:, 2:] * size * 1.5 + size / 2, p[:, 2:]], dim=-1))
    return torch.stack(out), faces


@pytest.mark.skipif(not warp_available(), reason="no warp")
def test_warp_and_torch_agree():
    screen, faces = random_sphere_batch(4, 64)
    a = rasterize(screen, faces, 64, 64, backend="warp")
    b = rasterize(screen, faces, 64, 64, backend="torch")
    agree = (a.face_index == b.face_index).float().mean()
    assert agree >= 0.9999
    assert (a.face_index >= 0).float().mean() > 0.2
    same = (a.face_index == b.face_index) & (a.face_index >= 0)
    torch.testing.assert_close(a.bary[same], b.bary[same], atol=1e-5, rtol=0)
    torch.testing.assert_close(a.depth[same], b.depth[same], atol=1e-5, rtol=1e-6)


@pytest.mark.skipif(not warp_available(), reason="no warp")
def test_warp_kernel_cache_lives_in_project_cache():
    import warp as wp

    from pipeline.render.raster_warp import init_warp, warp_cache_dir

    init_warp()
    cache = project_cache_dir()
    assert str(wp.config.kernel_cache_dir).startswith(str(cache))
    assert warp_cache_dir().startswith(str(cache))


def test_cache_dir_follows_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("DANET_CACHE_DIR", str(tmp_path / "c"))
    assert project_cache_dir() == (tmp_path / "c").resolve()
    monkeypatch.delenv("DANET_CACHE_DIR")
    assert project_cache_dir().name == ".cache"


def _brute_force(screen: np.ndarray, faces: np.ndarray, height: int, width: int):
    """Per-pixel reference in float64: visible face, its depth, and how close the pixel is to an edge or tie."""
    face_out = np.full((height, width), -1)
    margin = np.full((height, width), np.inf)
    for iy in range(height):
        for ix in range(width):
            px, py = ix + 0.5, iy + 0.5
            hits = []
            for f, (i, j, k) in enumerate(faces):
                (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = screen[i], screen[j], screen[k]
                area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
                w = np.array([
                    (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1),
                    (x0 - x2) * (py - y2) - (y0 - y2) * (px - x2),
                    (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0),
                ]) / area  # fmt: skip
                margin[iy, ix] = min(margin[iy, ix], np.abs(w).min())
                if np.all(w >= 0):
                    hits.append((1.0 / (w / np.array([z0, z1, z2])).sum(), f))
            if hits:
                hits.sort()
                face_out[iy, ix] = hits[0][1]
                if len(hits) > 1:
                    margin[iy, ix] = min(margin[iy, ix], hits[1][0] - hits[0][0])
    return face_out, margin


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_brute_force_reference_on_random_triangles(backend, seed):
    rng = np.random.default_rng(seed)
    n = 12
    screen = np.concatenate([rng.uniform(-4, 20, (3 * n, 2)), rng.uniform(0.5, 5.0, (3 * n, 1))], axis=1)
    faces = np.arange(3 * n).reshape(n, 3)
    expected, margin = _brute_force(screen, faces, 16, 16)
    frags = rasterize(
        torch.tensor(screen, dtype=torch.float32)[None], torch.from_numpy(faces), 16, 16, backend
    )
    clear = margin > 1e-3  # leave out pixels on an edge or at a near-tie of depths
    assert clear.mean() > 0.8
    assert np.array_equal(frags.face_index[0].numpy()[clear], expected[clear])


def test_a_warp_that_cannot_start_fails_loudly_and_torch_still_works(monkeypatch):
    import pipeline.render.raster_warp as raster_warp
    import pipeline.render.rasterize as rasterize_module

    def broken() -> None:
        raise RuntimeError("no compiler")

    monkeypatch.setattr(raster_warp, "init_warp", broken)
    monkeypatch.setattr(rasterize_module, "_warp_state", {})
    for backend in ("auto", "warp"):
        with pytest.raises(rasterize_module.WarpInitError, match=r"no compiler.*--backend torch"):
            rasterize_module.resolve_backend(backend)
    frags = rasterize(
        _tri((1.0, 1.0, 2.0), (9.0, 1.0, 2.0), (1.0, 9.0, 2.0)),
        torch.tensor([[0, 1, 2]]),
        10,
        10,
        backend="torch",
    )
    assert (frags.face_index == 0).sum() == 36


def test_auto_uses_torch_only_when_warp_is_not_installed(monkeypatch):
    import pipeline.render.rasterize as rasterize_module

    monkeypatch.setattr(rasterize_module, "warp_installed", lambda: False)
    assert rasterize_module.resolve_backend("auto") == "torch"
    with pytest.raises(ImportError, match="warp-lang"):
        rasterize_module.resolve_backend("warp")


def test_a_broken_warp_install_names_its_error_in_a_fresh_process(tmp_path):
    """A 'warp' package that fails on import (a missing native library): the auto backend stops with the
    cause, an explicit torch backend renders."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    fake = tmp_path / "warp"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise OSError("libwarp.so: cannot open shared object file")\n')
    code = (
        "import torch\n"
        "from pipeline.render.rasterize import WarpInitError, rasterize\n"
        "v = torch.tensor([[[1.0, 1.0, 2.0], [9.0, 1.0, 2.0], [1.0, 9.0, 2.0]]]); f = torch.tensor([[0, 1, 2]])\n"
        "print(int((rasterize(v, f, 10, 10, backend='torch').face_index == 0).sum()))\n"
        "try:\n    rasterize(v, f, 10, 10)\nexcept WarpInitError as err:\n    print(err)\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{root}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "36"
    assert "libwarp.so: cannot open" in lines[1] and "--backend torch" in lines[1]


def test_warp_is_installed_and_initialises_on_cpu():
    """warp-lang is a declared dependency: without this test, a missing or broken Warp would only turn the
    Warp-vs-torch tests above into skips and CI would stay green with the fast path gone."""
    import pipeline.render.rasterize as rasterize_module

    assert rasterize_module.warp_installed(), "warp-lang is not installed (pyproject.toml declares it)"
    assert warp_available()
    assert rasterize_module.resolve_backend("auto") == "warp"
    verts = _tri((1.0, 1.0, 2.0), (9.0, 1.0, 2.0), (1.0, 9.0, 2.0))
    frags = rasterize(verts, torch.tensor([[0, 1, 2]]), 10, 10, backend="warp")
    assert frags.face_index.device.type == "cpu" and (frags.face_index == 0).sum() == 36


def test_package_names_are_its_modules_and_backends_do_not_import_the_dispatcher():
    """pipeline.render exports no function under a module's name, and the backends import the shared
    fragments module, not rasterize.py (which imports them): no import circle."""
    import ast
    import pkgutil
    import types
    from pathlib import Path

    import pipeline.render as package

    for info in pkgutil.iter_modules(package.__path__):
        if hasattr(package, info.name):
            assert isinstance(getattr(package, info.name), types.ModuleType), info.name
    folder = Path(package.__file__).parent
    for backend in ("raster_torch.py", "raster_warp.py", "fragments.py"):
        tree = ast.parse((folder / backend).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "pipeline.render.rasterize" not in imported, backend
