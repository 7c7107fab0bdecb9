"""PartDrop (Section 4.4) and, for comparison, Dropout and DropBlock on the same IUV maps.

PartDrop removes whole body parts: for each sample every one of the 24 parts is dropped with probability
`rate`, and the *same* parts are dropped from the global map and from every partial map of that sample (their
I, U and V channels are zeroed). Dropout and DropBlock zero pixels / square blocks instead, and their rate
counts foreground pixels only (background pixels are never touched), so the three remove comparable amounts of
body. No rescaling is applied: the maps are one-hot-like inputs, not activations. All are identity in eval
mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.body.constants import NUM_PARTS, PARTIAL_PART_SUBSETS


def sample_part_keep(
    batch: int, rate: float, device=None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, 25) 1.0 = keep, 0.0 = drop, per part 0..24; background (0) is always kept."""
    drop = torch.rand(batch, NUM_PARTS, device=device, generator=generator) < rate
    keep = (~drop).float()
    return torch.cat([torch.ones(batch, 1, device=device), keep], dim=1)


def drop_parts_global(maps: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Zero the I/U/V channels of dropped parts of global maps (B, 75, H, W) given keep (B, 25)."""
    scale = keep.repeat(1, 3).to(maps.dtype)  # (B, 75)
    return maps * scale[:, :, None, None]


def drop_parts_partial(
    partial: torch.Tensor, keep: torch.Tensor, subsets: Sequence[Sequence[int]] | None = PARTIAL_PART_SUBSETS
) -> torch.Tensor:
    """Zero the dropped parts' channels in partial maps (B, J, 3K, h, w).

    With `subsets`, the maps are simplified (K = 7: background + each joint's subset); with None, K = 25.
    """
    b, j = partial.shape[:2]
    if subsets is None:
        scale = keep.repeat(1, 3)[:, None, :].expand(b, j, -1)
    else:
        index = torch.tensor([[0, *parts] for parts in subsets], device=keep.device)  # (J, K)
        scale = keep[:, index].repeat(1, 1, 3)  # (B, J, 3K)
    if scale.shape[-1] != partial.shape[2]:
        raise ValueError(f"partial maps have {partial.shape[2]} channels, drop mask {scale.shape[-1]}")
    return partial * scale.to(partial.dtype)[..., None, None]


def foreground(maps: torch.Tensor, channel_dim: int, layout: str = "iuv") -> torch.Tensor:
    """Boolean foreground of IUV maps: background probability (first I channel) below 0.5. The I block is
    the first third of the channels in the "iuv" layout [I | U | V], the last in "uvi" [U | V | I]."""
    first = 0 if layout == "iuv" else 2 * (maps.shape[channel_dim] // 3)
    return maps.select(channel_dim, first) < 0.5


def drop_pixels(
    maps: torch.Tensor, rate: float, channel_dim: int, generator=None, layout: str = "iuv"
) -> torch.Tensor:
    """Dropout of whole pixels (all channels), each foreground pixel dropped with probability `rate`."""
    fg = foreground(maps, channel_dim, layout)
    drop = (torch.rand(fg.shape, device=maps.device, generator=generator) < rate) & fg
    return maps * (~drop).unsqueeze(channel_dim).to(maps.dtype)


def drop_blocks(
    maps: torch.Tensor, rate: float, block: int, channel_dim: int, generator=None, layout: str = "iuv"
) -> torch.Tensor:
    """DropBlock: square blocks of side `block` seeded at foreground pixels with probability rate / block^2,
    so about `rate` of the foreground is removed; only foreground pixels inside blocks are zeroed."""
    fg = foreground(maps, channel_dim, layout)
    seeds = (torch.rand(fg.shape, device=maps.device, generator=generator) < rate / block**2) & fg
    flat = seeds.reshape(-1, 1, *fg.shape[-2:]).float()
    blocks = F.max_pool2d(flat, block, stride=1, padding=block // 2)[..., : fg.shape[-2], : fg.shape[-1]]
    drop = blocks.reshape(fg.shape).bool() & fg
    return maps * (~drop).unsqueeze(channel_dim).to(maps.dtype)


class MapDrop(nn.Module):
    """One of "none", "partdrop", "dropout", "dropblock" applied to (global (B,75,H,W), partial (B,J,3K,h,w)).

    forward returns the two maps (and, for PartDrop, stores the sampled keep mask (B, 25) in `last_keep`).
    `layout` is the maps' channel order: "iuv" [I | U | V] (ours) or "uvi" [U | V | I] (the authors'); PartDrop
    scales the three blocks alike, so only Dropout / DropBlock need it (to find the background channel).
    """

    def __init__(
        self, kind: str, rate: float, block_size: int = 7, simplified: bool = True, layout: str = "iuv"
    ):
        super().__init__()
        if kind not in ("none", "partdrop", "dropout", "dropblock"):
            raise ValueError(f"unknown drop kind {kind!r}")
        self.kind, self.rate, self.block_size, self.layout = kind, rate, block_size, layout
        self.subsets = PARTIAL_PART_SUBSETS if simplified else None
        self.last_keep: torch.Tensor | None = None

    def forward(
        self, global_maps: torch.Tensor, partial: torch.Tensor, keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training or self.kind == "none" or self.rate <= 0:
            return global_maps, partial
        if self.kind == "partdrop":
            if keep is None:
                keep = sample_part_keep(global_maps.shape[0], self.rate, global_maps.device)
            self.last_keep = keep
            return drop_parts_global(global_maps, keep), drop_parts_partial(partial, keep, self.subsets)
        if self.kind == "dropout":
            return (
                drop_pixels(global_maps, self.rate, 1, layout=self.layout),
                drop_pixels(partial, self.rate, 2, layout=self.layout),
            )
        small = max(1, round(self.block_size * partial.shape[-1] / global_maps.shape[-1]))
        return (
            drop_blocks(global_maps, self.rate, self.block_size, 1, layout=self.layout),
            drop_blocks(partial, self.rate, small, 2, layout=self.layout),
        )
