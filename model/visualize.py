"""Pictures of predictions: part-index maps in a fixed palette and the predicted mesh drawn over the input."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from model.iuv import iuv_image
from pipeline.render.cameras import WeakPerspectiveCamera
from pipeline.render.shade import part_palette, render_shaded


def part_picture(part_index: np.ndarray, size: int) -> np.ndarray:
    """(h, w) part numbers 0..24 -> (size, size, 3) uint8 RGB in the project's part palette (nearest upsampling)."""
    palette = (part_palette().numpy() * 255).astype(np.uint8)
    picture = palette[np.clip(part_index, 0, 24).astype(np.int64)]
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


def example_grid(examples: list[dict], faces: torch.Tensor) -> np.ndarray:
    """Rows of input | ground-truth parts | predicted parts | mesh overlay, one per example: (N*S, 4*S, 3) uint8."""
    rows = []
    for example in examples:
        image = example["image"].permute(1, 2, 0).numpy().copy()
        size = image.shape[0]
        pred = example["pred"]
        tiles = [
            image,
            part_picture(example["iuv"][0].numpy(), size),
            part_picture(predicted_parts(pred["index_logits"], pred["u"], pred["v"]), size),
            mesh_overlay(image, pred["vertices"], faces, pred["cam"]),
        ]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0) if rows else np.zeros((1, 1, 3), np.uint8)
