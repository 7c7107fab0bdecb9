"""The loader's image warp as one batched torch function, run on the training device.

With ``data.augment_on: device`` (``make_dataset(augment_on="device")``) the DataLoader workers decode and
do everything but the image warp (:func:`pipeline.augment.augment_sample` with ``pixels=False``: the
small arrays and the IUV map, whose nearest warp to 56 pixels and flip cost ~0.02 ms there and need the
body's flip table); :func:`device_augment` then makes, inside the training step, what the CPU path would
have made from the same parameter draws:

- ``image`` (B, 3, out, out) uint8: the stored crop sampled bilinearly (``grid_sample``, zeros outside) at
  ``input_to_crop`` (mirror included), times the RGB gains, rounded and saturated. OpenCV's warp rounds
  its coordinates to 1/32 pixel and its weights to 15 bits, and rounds to uint8 before the colour table;
  this path does neither, so pixels differ by about one level where the image has edges (tests bound the
  mean absolute difference);
- ``iuv_onehot`` (B, 75, size, size) float32 when asked (:func:`pipeline.loader.iuv_onehot`) of the
  batch's ``iuv``, which is the CPU path's own.

The image work moves to ``device`` (the stored crops move there as uint8, 1.3x the bytes of a 224 crop).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.loader import iuv_onehot

# ---------------------------------------------------------------------------------------------------------
# the pieces


def warp_images_bilinear(crops: torch.Tensor, inverse: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, S, S) uint8 crops -> (B, 3, size, size) float32 in [0, 255]: bilinear at the (B, 2, 3)
    inverse affines (output pixel -> source pixel, pixel centres at integers), zeros outside.

    The pixel affine is moved to grid_sample's normalised frame (align_corners=True: -1 and +1 are the
    centres of the first and last pixel) and ``affine_grid`` makes the float32 grid."""
    _, _, h, w = crops.shape
    a = inverse.to(crops.device, torch.float64)
    half = (size - 1) / 2.0
    options = {"dtype": torch.float64, "device": crops.device}
    to_source = torch.tensor([[2.0 / (w - 1), 0.0, -1.0], [0.0, 2.0 / (h - 1), -1.0], [0, 0, 1]], **options)
    from_output = torch.tensor([[half, 0.0, half], [0.0, half, half], [0.0, 0.0, 1.0]], **options)
    square = torch.cat([a, a.new_tensor([0.0, 0.0, 1.0]).expand(a.shape[0], 1, 3)], dim=1)
    theta = (to_source @ square @ from_output)[:, :2].to(torch.float32)
    grid = F.affine_grid(theta, [a.shape[0], 3, size, size], align_corners=True)
    return F.grid_sample(crops.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def apply_gains(images: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float [0, 255] times per-sample RGB gains (B, 3) -> uint8, rounded and saturated."""
    scaled = images * colour.to(images.device, images.dtype)[:, :, None, None]
    return scaled.round_().clamp_(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------------------------------
# the batch


def device_augment(
    batch: dict,
    *,
    out_size: int,
    device: torch.device | str | None = None,
    onehot: bool = False,
) -> dict:
    """A deferred batch (pipeline.loader.collate with ``deferred=True``) -> the batch the CPU path makes:
    ``image`` (B, 3, out_size, out_size) uint8 on ``device`` (default: where ``crop`` is), ``iuv`` moved
    there, plus ``iuv_onehot`` when ``onehot``; ``crop`` and ``input_to_crop`` are dropped, other entries
    are passed on as they are. A batch without ``crop`` (CPU-augmented) is returned unchanged.
    """
    if "crop" not in batch:
        return batch
    device = torch.device(device) if device is not None else batch["crop"].device
    out = {k: v for k, v in batch.items() if k not in ("crop", "input_to_crop")}
    crops = batch["crop"].to(device, non_blocking=True).permute(0, 3, 1, 2)  # (B, 3, S, S), a view
    images = warp_images_bilinear(crops, batch["input_to_crop"], out_size)
    out["image"] = apply_gains(images, batch["colour"])
    out["iuv"] = batch["iuv"].to(device, non_blocking=True)
    if onehot:
        out["iuv_onehot"] = iuv_onehot(out["iuv"])
    return out
