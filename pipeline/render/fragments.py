"""What every rasterizer backend shares: the depth-key layout and the Fragments result.

The z-buffer key of a pixel is ``(round(depth * DEPTH_SCALE) << FACE_BITS) | face`` (int64); the smallest
key wins. rasterize.py (the entry point) and its backends raster_torch.py / raster_warp.py import these
names from here, so no backend imports the module that dispatches to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEPTH_SCALE = 1.0e6  # depth units -> integer key units (micrometres for metre inputs)
FACE_BITS = 24  # low bits of the key hold the face index
MAX_FACES = 1 << FACE_BITS
MAX_DEPTH_Q = (1 << (63 - FACE_BITS)) - 1  # largest quantised depth that still fits in the key
EMPTY_KEY = torch.iinfo(torch.int64).max


@dataclass
class Fragments:
    """Per-pixel result of rasterization.

    face_index: (B,H,W) int64, index into the face list of the visible triangle, -1 where empty.
    bary: (B,H,W,3) float32 perspective-correct barycentrics of the visible triangle (0 where empty).
    depth: (B,H,W) float32 camera-frame depth of the visible surface, +inf where empty.
    """

    face_index: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(B,H,W) bool, True where some triangle is visible."""
        return self.face_index >= 0


def empty_fragments(batch: int, height: int, width: int, device: torch.device | str = "cpu") -> Fragments:
    """Fragments with nothing visible: face -1, bary 0, depth +inf."""
    return Fragments(
        face_index=torch.full((batch, height, width), -1, dtype=torch.int64, device=device),
        bary=torch.zeros((batch, height, width, 3), dtype=torch.float32, device=device),
        depth=torch.full((batch, height, width), float("inf"), dtype=torch.float32, device=device),
    )
