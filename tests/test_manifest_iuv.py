"""Ground-truth IUV for manifest rows: camera fit from keypoints, and IUV that covers the annotated body."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.render.camera_fit import fit_translation
from pipeline.render.manifest_iuv import render_manifest_iuv
from stages.ingest import main as ingest
from stages.synthesize import main as synthesize


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    assert synthesize(["--out", str(root / "synth"), "--n", "10", "--size", "128", "--no-progress"]) == 0
    assert ingest(["--dataset", "synth", "--root", str(root), "--out", str(root / "manifests")]) == 0
    rows = pq.read_table(root / "manifests" / "synth" / "train.parquet").to_pylist()
    return root, rows


def test_fitted_translation_recovers_the_true_camera(synth):
    root, _ = synth
    from pipeline.body import load_body_model

    data = np.load(root / "synth" / "train.npz")
    body = load_body_model()
    import torch

    out = body(betas=torch.as_tensor(data["shape"]), pose=torch.as_tensor(data["pose"]))
    points = body.regress(out.vertices, "spin24").double().numpy()
    # annotations use OpenCV's pixel convention: the principal point of a 128-pixel image is at 63.5
    fitted = fit_translation(
        points, data["part"][..., :2], data["part"][..., 2], data["focal_length"], np.full(2, 63.5)
    )
    np.testing.assert_allclose(fitted, data["cam_t"], rtol=2e-3, atol=2e-3)


def test_fit_translation_is_exact_on_noise_free_projections():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(3, 24, 3)) * 0.4
    truth = np.array([[0.1, -0.2, 30.0], [0.0, 0.0, 50.0], [-0.3, 0.1, 20.0]])
    cam = points + truth[:, None]
    keypoints = cam[..., :2] / cam[..., 2:] * 4000.0 + 100.0
    weights = np.ones((3, 24))
    weights[0, 5:] = 0.0  # few visible keypoints still suffice
    fitted = fit_translation(points, keypoints, weights, 4000.0, np.array([100.0, 100.0]), prior_weight=0.0)
    np.testing.assert_allclose(fitted, truth, rtol=1e-6, atol=1e-9)


def _crop_matrix(center, scale, size, margin):
    s = size / (200.0 * scale * margin)
    half = (size - 1) / 2.0
    return np.array([[s, 0.0, half - s * center[0]], [0.0, s, half - s * center[1]]])


def test_rendered_iuv_covers_the_visible_keypoints(synth):
    _, rows = synth
    size, margin = 96, 1.2
    matrices = [_crop_matrix(np.asarray(r["center"]), r["scale"], size, margin) for r in rows]
    maps = render_manifest_iuv(rows, matrices, size, device="cpu")
    assert len(maps) == len(rows)
    hits = total = 0
    for row, matrix, iuv in zip(rows, matrices, maps):
        assert iuv.shape == (size, size, 3) and iuv.dtype == np.uint8
        assert iuv[..., 0].max() <= 24 and (iuv[..., 0] > 0).mean() > 0.05
        kp = np.asarray(row["kp2d"]).reshape(24, 3)
        crop = kp[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        for (x, y), vis in zip(crop, kp[:, 2]):
            if vis > 0 and 0 <= x < size and 0 <= y < size:
                patch = iuv[max(0, int(y) - 1) : int(y) + 2, max(0, int(x) - 1) : int(x) + 2, 0]
                hits += bool((patch > 0).any())
                total += 1
    assert hits / total >= 0.95


def test_rows_without_smpl_get_no_map(synth):
    _, rows = synth
    row = dict(rows[0], has_smpl=False)
    assert render_manifest_iuv(
        [row], [_crop_matrix(np.asarray(row["center"]), row["scale"], 64, 1.0)], 64
    ) == [None]


def test_sparse_iuv_and_its_encoding_equal_the_dense_formula_bit_for_bit():
    """Only covered pixels are interpolated; values must equal the formula applied to every pixel."""
    import torch

    from pipeline.render.cameras import WeakPerspectiveCamera
    from pipeline.render.iuv import encode_iuv, encoded_iuv_from_fragments, iuv_from_fragments
    from pipeline.render.meshes import uv_sphere
    from pipeline.render.rasterize import rasterize

    verts, faces = uv_sphere(12, 16)
    verts = torch.stack([verts * 0.6, verts * 0.3])
    frags = rasterize(WeakPerspectiveCamera(torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.2, 0.1]])).to_screen(
        verts, 40, 40), faces, 40, 40, backend="torch")  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    face_part = torch.randint(1, 25, (len(faces),), generator=gen)
    corner_uv = torch.rand(len(faces), 3, 2, generator=gen)
    got = iuv_from_fragments(frags, face_part, corner_uv)
    hit = frags.face_index >= 0
    safe = frags.face_index.clamp(min=0)
    uv = (frags.bary[..., :, None] * corner_uv[safe]).sum(-2).clamp(0.0, 1.0) * hit[..., None]
    want = torch.cat([(face_part[safe] * hit)[..., None].float(), uv], dim=-1)
    assert hit.sum() > 100 and torch.equal(got, want)
    assert torch.equal(encoded_iuv_from_fragments(frags, face_part, corner_uv), encode_iuv(want))
