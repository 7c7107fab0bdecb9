"""Ground-truth IUV maps for manifest rows: SMPL fit -> body model -> fitted crop camera -> rasterizer.

This is the render_iuv stage's default renderer (pipeline.renderers.BUILT_IN, built with the run's device
and body; docs/design.md, "The render stage"). Rows are
manifest rows (pipeline/datasets/schema.py) with `has_smpl`, `pose` (72), `betas` (10), `gender` and `kp2d`
(24 x 3, image pixels, SPIN order); crop transforms are (2, 3) image -> crop affine matrices
(pipeline.crop). Which body model, dense parts and keypoint regressor are used is a
:class:`pipeline.body.spec.BodySpec`, passed by the shard builder (its environment fallback is read only when
none is passed).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from pipeline.body.spec import BodySpec
from pipeline.conventions import BBOX_UNIT, crop_focal, pixel_centre, screen_centre
from pipeline.render.camera_fit import fit_translation
from pipeline.render.cameras import PerspectiveCamera
from pipeline.render.iuv import IUVRenderer


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@functools.lru_cache(maxsize=4)
def _renderer(body: BodySpec, fingerprint: tuple, device: str, backend: str) -> IUVRenderer:
    """One renderer per worker process, per (body files as on disk, device, backend)."""
    return IUVRenderer(body.load_parts(), device=device, backend=backend)


_GENDERS = {"m": "male", "f": "female", "n": "neutral"}


def render_manifest_iuv(
    rows: Sequence[dict],
    crop_transforms: Sequence[np.ndarray],
    crop_size: int,
    *,
    device: str = "auto",
    margin: float | None = None,
    backend: str = "auto",
    body: BodySpec | None = None,
) -> list[np.ndarray | None]:
    """(crop_size, crop_size, 3) uint8 IUV map for each row with an SMPL fit; None for rows without one.

    The crop camera has the paper's focal length for the person box (5000 px per 224 px of box) and a
    translation fitted to the row's visible 2D keypoints (see pipeline.render.camera_fit). `margin` is the
    crop's side over the person box; by default it is read off the crop transform and the row's scale.
    `body`: the body files (default: BodySpec.from_env()).
    """
    spec = body if body is not None else BodySpec.from_env()
    torch_device = _device(device)
    results: list[np.ndarray | None] = [None] * len(rows)
    with_smpl = [i for i, row in enumerate(rows) if bool(row.get("has_smpl"))]
    by_gender: dict[str, list[int]] = {}
    for i in with_smpl:
        by_gender.setdefault(_GENDERS.get(str(rows[i].get("gender", "n")), "neutral"), []).append(i)
    renderer = _renderer(spec, spec.fingerprint(), str(torch_device), backend)
    for gender, indices in sorted(by_gender.items()):
        model = spec.load_body(gender, str(torch_device))
        pose = torch.as_tensor(
            np.stack([np.asarray(rows[i]["pose"], np.float32).reshape(72) for i in indices])
        )
        betas = torch.as_tensor(
            np.stack([np.asarray(rows[i]["betas"], np.float32).reshape(10) for i in indices])
        )
        with torch.no_grad():
            out = model(betas=betas.to(torch_device), pose=pose.to(torch_device))
            points = model.regress(out.vertices, "spin24").double().cpu().numpy()
        matrices = np.stack([np.asarray(crop_transforms[i], np.float64) for i in indices])
        kp = np.stack([np.asarray(rows[i]["kp2d"], np.float64).reshape(24, 3) for i in indices])
        kp_crop = np.einsum("bij,bnj->bni", matrices[:, :, :2], kp[..., :2]) + matrices[:, None, :, 2]
        if margin is None:
            box = np.array([BBOX_UNIT * float(rows[i]["scale"]) for i in indices])
            margins = crop_size / (matrices[:, 0, 0] * box)
        else:
            margins = np.full(len(indices), margin)
        focal = np.array([crop_focal(crop_size, m) for m in margins])
        principal = np.full(2, pixel_centre(crop_size))  # OpenCV convention: pixel centres at integers
        translation = fit_translation(points, kp_crop, kp[..., 2] > 0, focal, principal)
        count = len(indices)
        intrinsics = np.tile(np.eye(3), (count, 1, 1))
        intrinsics[:, 0, 0] = intrinsics[:, 1, 1] = focal
        intrinsics[:, :2, 2] = screen_centre(crop_size)  # the rasterizer's convention: pixel centres at +0.5
        camera = PerspectiveCamera(
            K=torch.as_tensor(intrinsics, dtype=torch.float32),
            R=torch.as_tensor(np.tile(np.eye(3), (count, 1, 1)), dtype=torch.float32),
            t=torch.as_tensor(translation, dtype=torch.float32),
        )
        encoded = renderer.render_encoded(out.vertices, camera, crop_size, crop_size).cpu().numpy()
        for slot, i in enumerate(indices):
            results[i] = encoded[slot]
    return results
