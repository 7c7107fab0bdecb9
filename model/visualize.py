"""Pictures of predictions: part-index maps in a fixed palette and the predicted mesh drawn over the input,
laid out with column titles, per-row errors and a part legend (pipeline/render/annotate.py)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from model.iuv import iuv_image
from pipeline.render.annotate import densepose_legend, header_row, part_colours_u8, row_label, stack_rows
from pipeline.render.cameras import WeakPerspectiveCamera
from pipeline.render.shade import render_shaded

EXAMPLE_COLUMNS = ("input", "ground-truth parts", "predicted parts", "predicted mesh")
MIN_TILE = 192  # tiles are enlarged to at least this side so that labels stay readable


def part_picture(part_index: np.ndarray, size: int) -> np.ndarray:
    """(h, w) part numbers 0..24 -> (size, size, 3) uint8 RGB in the project's part palette (nearest upsampling)."""
    picture = part_colours_u8()[np.clip(part_index, 0, 24).astype(np.int64)]
    return cv2.resize(picture, (size, size), interpolation=cv2.INTER_NEAREST)


def predicted_parts(index_logits: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> np.ndarray:
    """(25, h, w) heads of one sample -> (h, w) predicted part numbers."""
    return iuv_image(index_logits[None], u[None], v[None])[0, ..., 0].round().numpy().astype(np.int64)


def mesh_overlay(
    image: np.ndarray, vertices: torch.Tensor, faces: torch.Tensor, cam: torch.Tensor
) -> np.ndarray:
    """(S, S, 3) uint8 crop, (V, 3) predicted vertices, (3,) weak-perspective camera -> shaded mesh over the crop."""
    size = image.shape[0]
    camera = WeakPerspectiveCamera(cam[None].float(), crop_size=float(size))
    shaded = render_shaded(
        vertices[None].float(), faces, camera, size, size, background=torch.as_tensor(image)
    )[0].numpy()
    return cv2.addWeighted(image, 0.35, shaded, 0.65, 0.0)


def example_grid(
    examples: list[dict], faces: torch.Tensor, pa_mpjpe_mm: list[float | None] | None = None
) -> np.ndarray:
    """Column titles, then one row per example: input | ground-truth parts | predicted parts | mesh overlay
    (the row's PA-MPJPE in mm written on its input when `pa_mpjpe_mm` is given), then the part legend.
    (28 + N*T + legend, 4*T, 3) uint8 RGB with T = max(S, MIN_TILE)."""
    if not examples:
        return np.zeros((1, 1, 3), np.uint8)
    rows = []
    for i, example in enumerate(examples):
        image = example["image"].permute(1, 2, 0).numpy().copy()
        size = image.shape[0]
        tile = max(size, MIN_TILE)
        pred = example["pred"]
        tiles = [
            cv2.resize(image, (tile, tile), interpolation=cv2.INTER_LINEAR),
            part_picture(example["iuv"][0].numpy(), tile),
            part_picture(predicted_parts(pred["index_logits"], pred["u"], pred["v"]), tile),
            cv2.resize(mesh_overlay(image, pred["vertices"], faces, pred["cam"]), (tile, tile)),
        ]
        error = pa_mpjpe_mm[i] if pa_mpjpe_mm is not None and i < len(pa_mpjpe_mm) else None
        label = f"#{i}  PA-MPJPE {error:.0f} mm" if error is not None and np.isfinite(error) else f"#{i}"
        tiles[0] = row_label(tiles[0], label, max(11.0, tile / 16))
        rows.append(np.concatenate(tiles, axis=1))
    tile = rows[0].shape[1] // len(EXAMPLE_COLUMNS)
    return stack_rows(
        header_row(list(EXAMPLE_COLUMNS), tile), *rows, densepose_legend(rows[0].shape[1], row_height=18)
    )
