"""From a loader batch (pipeline.loader) to the network's input and the targets of model.losses.

The loader yields 224-pixel crops with keypoints in crop pixels (OpenCV convention: integer coordinates are
pixel centres) and IUV codes at 56 x 56. The network may run at another input size (the "tiny" preset uses
64), so images are resized and IUV maps resampled to its map size here. SPIN-style labels carry no camera;
the SMPL joints' 2D positions (heatmap targets) are obtained by fitting the crop camera's translation to the
visible 2D keypoints, exactly as the ground-truth IUV maps were rendered (pipeline.render.camera_fit).

One bad sample never stops a run: a label with a non-finite value (NaN / inf keypoints, 3D joints or SMPL
parameters, e.g. from a bad source row) is zeroed and flagged absent, so that sample's terms drop out of
the losses, and the batch's targets count it (`labels_dropped`); a sample whose keypoints cannot fix the
camera has no SMPL-joint heatmap targets (`fit_skipped`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.conventions import NETWORK_CROP, REFERENCE_FOCAL, pixel_centre
from pipeline.loader import iuv_onehot
from pipeline.render.camera_fit import MIN_FIT_KEYPOINTS, fit_translation

log = logging.getLogger(__name__)

# ImageNet statistics: the backbones' pretrained weights expect them.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
LOADER_CROP = NETWORK_CROP  # side of the loader's crops, pixels
HEATMAP_MIN_VISIBLE = 4  # visible keypoints a sample needs for SMPL-joint heatmap targets
assert HEATMAP_MIN_VISIBLE >= MIN_FIT_KEYPOINTS


def drop_broken_labels(batch: dict) -> tuple[dict, int]:
    """The batch with every non-finite label of a sample zeroed and flagged absent (kp2d: visibility 0;
    kp3d: has_kp3d False; pose / betas: has_smpl False), and the number of samples so treated. A batch
    without any is returned as it is."""
    kp2d_bad = ~torch.isfinite(batch["kp2d"]).flatten(1).all(1)
    kp3d_bad = ~torch.isfinite(batch["kp3d"]).flatten(1).all(1)
    smpl_bad = ~(torch.isfinite(batch["pose"]).all(1) & torch.isfinite(batch["betas"]).all(1))
    bad = kp2d_bad | kp3d_bad | smpl_bad
    if not bool(bad.any()):
        return batch, 0
    out = dict(batch)
    out["kp2d"] = torch.where(kp2d_bad[:, None, None], 0.0, batch["kp2d"])
    out["kp3d"] = torch.where(kp3d_bad[:, None, None], 0.0, batch["kp3d"])
    out["has_kp3d"] = batch["has_kp3d"] & ~kp3d_bad
    out["pose"] = torch.where(smpl_bad[:, None], 0.0, batch["pose"])
    out["betas"] = torch.where(smpl_bad[:, None], 0.0, batch["betas"])
    out["has_smpl"] = batch["has_smpl"] & ~smpl_bad
    keys = [k for k, b in zip(batch.get("key", []), bad.tolist()) if b]
    log.warning("dropped the non-finite labels of %d sample(s): %s", int(bad.sum()), ", ".join(keys[:5]))
    return out, int(bad.sum())


def normalise_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) uint8 RGB -> (B, 3, size, size) float, resized (antialiased) and ImageNet-normalised."""
    x = images.float() / 255.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = x.new_tensor(IMAGE_MEAN)[:, None, None]
    std = x.new_tensor(IMAGE_STD)[:, None, None]
    return (x - mean) / std


def pixels_to_normalised(points: torch.Tensor, size: float = LOADER_CROP) -> torch.Tensor:
    """(..., 2) crop pixels (pixel centres at integers) -> [-1, 1] crop coordinates (model.camera.project)."""
    return (points - pixel_centre(size)) / (size / 2.0)


def resample_iuv_codes(iuv: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, h, w) uint8 IUV codes -> (B, 3, size, size) by nearest sampling (part numbers stay exact)."""
    if iuv.shape[-1] == size and iuv.shape[-2] == size:
        return iuv
    return F.interpolate(iuv.float(), size=(size, size), mode="nearest-exact").to(torch.uint8)


def point_targets(batch: dict, map_size: int, device: torch.device) -> dict:
    """The DensePose-COCO targets of model.point_losses from the batch's dp_* entries (pipeline.dp_points):
    points in [-1, 1] map coordinates with part, UV and validity, coarse masks at ``map_size``; {} when no
    sample of the batch carries any."""
    out: dict = {}
    if "dp_points" in batch and bool((batch["dp_count"] > 0).any()):
        points = batch["dp_points"].to(device).float()
        slots = torch.arange(points.shape[1], device=device)
        out["dp_valid"] = slots[None] < batch["dp_count"].to(device)[:, None]
        out["dp_xy"] = pixels_to_normalised(points[..., :2])  # input pixels -> [-1, 1], any map size
        out["dp_part"] = points[..., 2].round().long() * out["dp_valid"]
        out["dp_uv"] = points[..., 3:5]
    if "dpmask" in batch and bool(batch["has_dpmask"].any()):
        mask = batch["dpmask"][:, None]
        if mask.shape[-1] != map_size:
            mask = F.interpolate(mask.float(), size=(map_size, map_size), mode="nearest-exact")
        out["dpmask"] = mask[:, 0].to(device).long()
        out["has_dpmask"] = batch["has_dpmask"].to(device).bool()
    return out


@torch.no_grad()
def smpl_joints_2d(posed, body, kp2d: torch.Tensor, focal: float = REFERENCE_FOCAL) -> torch.Tensor:
    """(B, 24, 3) SMPL joints in [-1, 1] crop coordinates + visibility, through a camera fitted to kp2d.

    posed: the ground-truth BodyOutput (B samples); kp2d (B, 24, 3) loader-crop pixels + visibility.
    Visibility is 1 for joints that land inside the crop of samples with >= 4 visible keypoints, else 0
    (and the coordinates 0 where the fit has no solution: no visible keypoint).
    """
    keypoints = body.regress(posed.vertices, "spin24").double().cpu().numpy()
    visible = kp2d[..., 2].cpu().numpy() > 0
    principal = np.full(2, pixel_centre(LOADER_CROP))
    translation = fit_translation(keypoints, kp2d[..., :2].double().cpu().numpy(), visible, focal, principal)
    joints = posed.joints.double().cpu().numpy() + translation[:, None]
    pixels = joints[..., :2] / joints[..., 2:3] * focal + principal
    normalised = pixels_to_normalised(torch.from_numpy(pixels))
    inside = (normalised.abs() <= 1.0).all(-1) & torch.from_numpy(visible.sum(1) >= HEATMAP_MIN_VISIBLE)[
        :, None
    ]
    if not np.isfinite(translation).all():
        normalised = torch.nan_to_num(normalised, nan=0.0, posinf=0.0, neginf=0.0)
    return torch.cat([normalised, inside[..., None].double()], dim=-1).to(kp2d.device, torch.float32)


def batch_to_inputs(
    batch: dict, image_size: int, map_size: int, body, device: torch.device
) -> tuple[torch.Tensor, dict]:
    """Network input (B, 3, S, S) and the targets dict of model.losses, on `device`; the targets also
    count `labels_dropped` (samples with non-finite labels) and `fit_skipped` (SMPL samples with fewer
    than HEATMAP_MIN_VISIBLE visible keypoints), as ints."""
    batch, dropped = drop_broken_labels(batch)
    image = normalise_images(batch["image"].to(device), image_size)
    kp2d = batch["kp2d"].to(device).float()
    has_smpl = batch["has_smpl"].to(device).bool()
    targets = {
        "iuv": iuv_onehot(resample_iuv_codes(batch["iuv"], map_size)).to(device),
        "has_iuv": batch["has_iuv"].to(device).bool(),
        "pose": batch["pose"].to(device).float(),
        "betas": batch["betas"].to(device).float(),
        "has_smpl": has_smpl,
        "kp3d": batch["kp3d"].to(device).float(),
        "has_kp3d": batch["has_kp3d"].to(device).bool(),
        "kp2d": torch.cat([pixels_to_normalised(kp2d[..., :2]), kp2d[..., 2:]], dim=-1),
    }
    targets.update(point_targets(batch, map_size, device))  # DensePose points and masks, where given
    with torch.no_grad():  # posed once here; the losses reuse it instead of posing the body again
        posed = body(betas=targets["betas"], pose=targets["pose"])
    targets["smpl_joints"], targets["smpl_vertices"] = posed.joints, posed.vertices
    joints2d = smpl_joints_2d(posed, body, kp2d)
    joints2d[..., 2] *= has_smpl.float()[:, None]
    targets["joints2d_smpl"] = joints2d
    visible = (kp2d[..., 2] > 0).sum(1)
    targets["labels_dropped"] = dropped
    targets["fit_skipped"] = int(((visible < HEATMAP_MIN_VISIBLE) & has_smpl).sum())
    return image, targets
