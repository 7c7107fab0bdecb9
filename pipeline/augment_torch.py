"""The loader's image and IUV warps as one batched torch function, run on the training device.

With ``data.augment_on: device`` (``make_dataset(augment_on="device")``) the DataLoader workers only
decode and compute the small arrays (affines, keypoints, pose, points: :func:`pipeline.augment.
augment_sample` with ``pixels=False``); :func:`device_augment` then makes, inside the training step,
what the CPU path would have made from the same parameter draws:

- ``image`` (B, 3, out, out) uint8: the stored crop sampled bilinearly (``grid_sample``, zeros outside) at
  ``input_to_crop`` (mirror included), times the RGB gains, rounded and saturated. OpenCV's warp rounds
  its coordinates to 1/32 pixel and its weights to 15 bits, and rounds to uint8 before the colour table;
  this path does neither, so pixels differ by about one level where the image has edges (tests bound the
  mean absolute difference);
- ``iuv`` (B, 3, size, size) uint8: the stored IUV sampled by nearest neighbour at ``map_to_crop`` (the
  source coordinate rounded to a pixel; only coordinates at a half pixel can round otherwise), then,
  for flipped samples, mirrored and relabelled through the flip tables as gathers (part ``PART_FLIP``,
  (u, v) through the body's UV mirror table), as :func:`pipeline.render.flip.flip_iuv` does;
- ``iuv_onehot`` (B, 75, size, size) float32 when asked (:func:`pipeline.loader.iuv_onehot`).

Everything is on ``device`` (the stored crops move there as uint8, 1.3x the bytes of a 224 crop).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.body.constants import NUM_PARTS
from pipeline.loader import iuv_onehot


@dataclass(frozen=True)
class FlipTables:
    """The IUV mirror as gathers: ``part_flip`` (25,) int64 mirror part of each part index (0 stays 0);
    ``uv`` (24 * 256 * 256, 2) uint8, row ``(p - 1) * 65536 + u8 * 256 + v8`` = the mirrored (u8, v8) of
    part p (pipeline.render.flip.FlipTable.lut, flattened)."""

    part_flip: torch.Tensor
    uv: torch.Tensor

    def to(self, device: torch.device | str) -> FlipTables:
        return FlipTables(self.part_flip.to(device), self.uv.to(device))


def tables_from_flip_table(table) -> FlipTables:
    """:class:`FlipTables` of a :class:`pipeline.render.flip.FlipTable`."""
    return FlipTables(
        torch.as_tensor(np.asarray(table.part_flip), dtype=torch.int64),
        torch.from_numpy(np.ascontiguousarray(table.lut).reshape(NUM_PARTS * 256 * 256, 2)),
    )


def tabulate_flip_fn(flip_iuv_fn) -> FlipTables:
    """:class:`FlipTables` of any loader ``flip_iuv_fn`` (mirror the columns, then map each pixel's code on
    its own): the function is run once on a one-pixel-wide map holding every (part, u, v) code, where the
    mirror does nothing, so its output is the table. Raises ValueError for a function that sends a part
    to several parts or to the background, or that is not that mirror + per-pixel map on a check map."""
    part = np.repeat(np.arange(1, NUM_PARTS + 1, dtype=np.uint8), 256 * 256)
    u, v = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    codes = np.stack([part, np.tile(u.ravel(), NUM_PARTS), np.tile(v.ravel(), NUM_PARTS)], axis=-1)
    out = np.asarray(flip_iuv_fn(np.ascontiguousarray(codes[:, None, :])))[:, 0]
    part_flip = np.zeros(NUM_PARTS + 1, dtype=np.int64)
    for p in range(1, NUM_PARTS + 1):
        mapped = np.unique(out[(p - 1) * 65536 : p * 65536, 0])
        if len(mapped) != 1 or mapped[0] == 0:
            raise ValueError(f"flip_iuv_fn maps part {p} to parts {mapped.tolist()}: not a part relabelling")
        part_flip[p] = int(mapped[0])
    tables = FlipTables(torch.from_numpy(part_flip), torch.from_numpy(np.ascontiguousarray(out[:, 1:])))
    rng = np.random.default_rng(0)  # the check map: random codes and background
    check = np.stack([rng.integers(0, NUM_PARTS + 1, (7, 9)), *rng.integers(0, 256, (2, 7, 9))], -1)
    check = (check * (check[..., :1] > 0)).astype(np.uint8)  # a valid map: no U, V on the background
    expect = torch.from_numpy(np.asarray(flip_iuv_fn(check.copy())).transpose(2, 0, 1).copy())
    got = relabel_mirrored(torch.from_numpy(check[:, ::-1].transpose(2, 0, 1).copy())[None], tables)[0]
    if not torch.equal(got, expect):
        raise ValueError("flip_iuv_fn is not a column mirror followed by a per-pixel code map")
    return tables


@functools.lru_cache(maxsize=4)
def default_flip_tables(device: str = "cpu") -> FlipTables:
    """Flip tables of the built-in body (those of :func:`pipeline.augment.default_flip_iuv`) on ``device``,
    made once per process and device (the trainer asks every step)."""
    if device != "cpu":
        return default_flip_tables("cpu").to(device)
    return flip_tables_for(None)


def flip_tables_for(flip_iuv_fn=None) -> FlipTables:
    """Flip tables for a loader's ``flip_iuv_fn`` (None: the built-in body's): read off the table of a
    ``functools.partial(pipeline.render.flip.flip_iuv, table=...)`` (what make_flip_iuv_fn returns, also
    behind default_flip_iuv), tabulated otherwise (:func:`tabulate_flip_fn`)."""
    from pipeline.augment import default_flip_iuv, default_flip_table
    from pipeline.render.flip import flip_iuv

    if flip_iuv_fn is None or flip_iuv_fn is default_flip_iuv:
        return tables_from_flip_table(default_flip_table())
    if isinstance(flip_iuv_fn, functools.partial) and flip_iuv_fn.func is flip_iuv and not flip_iuv_fn.args:
        return tables_from_flip_table(flip_iuv_fn.keywords["table"])
    return tabulate_flip_fn(flip_iuv_fn)


# ---------------------------------------------------------------------------------------------------------
# the pieces


def relabel_mirrored(codes: torch.Tensor, tables: FlipTables) -> torch.Tensor:
    """(B, 3, H, W) uint8 IUV codes already mirrored left-right -> the mirrored body's codes: part p ->
    ``part_flip[p]``, (u, v) through the UV table; background stays 0 (pipeline.render.flip.flip_iuv)."""
    part = codes[:, 0].long()
    if part.numel() and int(part.max()) > NUM_PARTS:
        raise ValueError(f"relabel_mirrored: part index {int(part.max())} > {NUM_PARTS} in channel 0")
    fg = part > 0
    row = ((part - 1).clamp(min=0) * 256 + codes[:, 1].long()) * 256 + codes[:, 2].long()
    uv = tables.uv[row].permute(0, 3, 1, 2)  # (B, 2, H, W)
    out = torch.cat([tables.part_flip[part].to(torch.uint8)[:, None], uv], dim=1)
    return out * fg[:, None]


def source_pixels(inverse: torch.Tensor, size: int) -> torch.Tensor:
    """(B, size, size, 2) float64 source (x, y) of every pixel of a ``size`` output under the (B, 2, 3)
    inverse affines (output pixel -> source pixel, pixel centres at integers)."""
    a = inverse.to(torch.float64)
    grid = torch.arange(size, dtype=torch.float64, device=a.device)
    gy, gx = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).reshape(1, -1, 3)
    return (points @ a.transpose(1, 2)).reshape(a.shape[0], size, size, 2)


def warp_codes_nearest(codes: torch.Tensor, inverse: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, S, S) uint8 label maps -> (B, C, size, size) by nearest neighbour at the (B, 2, 3) inverse
    affines: the source coordinate rounded to the nearest pixel (half to even); outside the map reads 0.
    OpenCV 5.1's ``INTER_NEAREST`` warp picked the same pixel everywhere measured (tests); OpenCV 4's
    1/1024-pixel fixed point can differ for coordinates within 1/1024 of a half pixel."""
    b, c, h, w = codes.shape
    x, y = torch.round(source_pixels(inverse.to(codes.device), size)).long().unbind(-1)
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    flat = (y.clamp(0, h - 1) * w + x.clamp(0, w - 1)).reshape(b, 1, -1).expand(b, c, -1)
    out = torch.gather(codes.reshape(b, c, h * w), 2, flat).reshape(b, c, size, size)
    return out * inside[:, None]


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
    tables: FlipTables | None = None,
    *,
    out_size: int,
    iuv_size: int,
    device: torch.device | str | None = None,
    onehot: bool = False,
) -> dict:
    """A deferred batch (pipeline.loader.collate with ``deferred=True``) -> the batch the CPU path makes:
    ``image`` (B, 3, out_size, out_size) uint8 and ``iuv`` (B, 3, iuv_size, iuv_size) uint8 on ``device``
    (default: where ``crop`` is), plus ``iuv_onehot`` when ``onehot``; ``crop``, ``crop_iuv`` and the
    affines are dropped, other entries are passed on as they are. ``tables`` defaults to the built-in
    body's (:func:`default_flip_tables`). A batch without ``crop`` (CPU-augmented) is returned unchanged.
    """
    if "crop" not in batch:
        return batch
    device = torch.device(device) if device is not None else batch["crop"].device
    tables = tables.to(device) if tables is not None else default_flip_tables(str(device))
    out = {k: v for k, v in batch.items() if k not in ("crop", "crop_iuv", "input_to_crop", "map_to_crop")}
    crops = batch["crop"].to(device, non_blocking=True).permute(0, 3, 1, 2)  # (B, 3, S, S), a view
    images = warp_images_bilinear(crops, batch["input_to_crop"], out_size)
    out["image"] = apply_gains(images, batch["colour"])
    codes = batch["crop_iuv"].to(device, non_blocking=True).permute(0, 3, 1, 2)
    iuv = warp_codes_nearest(codes, batch["map_to_crop"], iuv_size)
    flip = batch["flip"].to(device)
    if bool(flip.any()):
        iuv = torch.where(flip[:, None, None, None], relabel_mirrored(iuv.flip(-1), tables), iuv)
    out["iuv"] = iuv
    if onehot:
        out["iuv_onehot"] = iuv_onehot(iuv)
    return out
