"""IUV images: rendering from fragments, uint8 encoding, one-hot network tensor, coarse parts, downsampling.

An IUV image is (B,H,W,3) float: channel 0 = I, the DensePose part 0..24 (0 background), channels 1, 2 = U, V
in [0, 1] (0 on background). Its storage form (``iuv.png``) is uint8 with I as is and U, V = round(255 u). The
network's one-hot form is (B,75,H,W): [0:25] one-hot of I, [25:50] U in the channel of its part (zero
elsewhere), [50:75] V likewise.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from pipeline.body.constants import NUM_PARTS, PART_TO_COARSE
from pipeline.render.rasterize import Fragments, rasterize

NUM_I = NUM_PARTS + 1  # 25 classes with background
ONEHOT_CHANNELS = 3 * NUM_I


class DensePartsLike(Protocol):
    """What the renderer needs from ``pipeline.body.DenseParts`` (R render vertices, Fr render faces)."""

    render_to_body: torch.Tensor  # (R,) int64 body-vertex index of each render vertex
    part: torch.Tensor  # (R,) int64 in 1..24
    uv: torch.Tensor  # (R,2) float32 in [0, 1]
    faces: torch.Tensor  # (Fr,3) int64 over render vertices
    face_part: torch.Tensor  # (Fr,) int64 in 1..24


def face_uv(dense_parts: DensePartsLike) -> torch.Tensor:
    """(Fr,3,2) float32 UV of each corner of each render face."""
    return torch.as_tensor(dense_parts.uv, dtype=torch.float32)[torch.as_tensor(dense_parts.faces).long()]


def covered_iuv(
    fragments: Fragments, face_part: torch.Tensor, corner_uv: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The IUV values of the pixels covered by a face, and where they are.

    Only covered pixels are interpolated (a body fills a fraction of a crop), with the same float
    operations per pixel as a dense computation over the whole image would do, so the values are bit for
    bit those of the dense formula.

    Returns:
        (N,) int64 flat indices into the (B*H*W) pixels, and (N,3) float32 (I, U, V) at those pixels.
    """
    face = fragments.face_index
    hit = torch.nonzero(face.reshape(-1) >= 0).squeeze(1)
    hit_face = face.reshape(-1).index_select(0, hit)
    bary = fragments.bary.reshape(-1, 3).index_select(0, hit)
    corners = corner_uv.to(face.device).reshape(-1, 6).index_select(0, hit_face).reshape(-1, 3, 2)
    uv = (bary[:, :, None] * corners).sum(-2).clamp(0.0, 1.0)
    part = face_part.to(face.device).index_select(0, hit_face).to(torch.float32)
    return hit, torch.cat([part[:, None], uv.to(torch.float32)], dim=1)


def iuv_from_fragments(
    fragments: Fragments, face_part: torch.Tensor, corner_uv: torch.Tensor
) -> torch.Tensor:
    """Interpolate the IUV image from rasterized render faces.

    Args:
        fragments: rasterization of the render faces (face_index (B,H,W), bary (B,H,W,3)).
        face_part: (Fr,) int64 part 1..24 of each render face.
        corner_uv: (Fr,3,2) float UV of each face corner (see :func:`face_uv`).

    Returns:
        (B,H,W,3) float32 IUV image; background pixels are (0, 0, 0).
    """
    face = fragments.face_index
    out = torch.zeros((*face.shape, 3), dtype=torch.float32, device=face.device)
    hit, values = covered_iuv(fragments, face_part, corner_uv)
    out.view(-1, 3).index_copy_(0, hit, values)
    return out


def encoded_iuv_from_fragments(
    fragments: Fragments, face_part: torch.Tensor, corner_uv: torch.Tensor
) -> torch.Tensor:
    """``encode_iuv(iuv_from_fragments(...))`` without the float image: (B,H,W,3) uint8 IUV codes.

    Background encodes to (0, 0, 0), so only covered pixels are encoded; equal byte for byte.
    """
    face = fragments.face_index
    out = torch.zeros((*face.shape, 3), dtype=torch.uint8, device=face.device)
    hit, values = covered_iuv(fragments, face_part, corner_uv)
    out.view(-1, 3).index_copy_(0, hit, encode_iuv(values))
    return out


def _as_tensor(x: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool]:
    return (torch.from_numpy(np.asarray(x)), True) if isinstance(x, np.ndarray) else (x, False)


def encode_iuv(iuv: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """(...,3) float IUV -> (...,3) uint8: I unchanged (0..24), U, V -> round(255 u). numpy in, numpy out."""
    t, was_np = _as_tensor(iuv)
    if t.shape[-1] != 3:
        raise ValueError(f"encode_iuv: last dimension must be 3 (I, U, V), got {tuple(t.shape)}")
    part = t[..., 0].round().clamp(0, NUM_PARTS)
    uv = (t[..., 1:].clamp(0.0, 1.0) * 255.0).round()
    out = torch.cat([part[..., None], uv], dim=-1).to(torch.uint8)
    return out.numpy() if was_np else out


def decode_iuv(iuv_uint8: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """(...,3) uint8 IUV -> (...,3) float32: I as a float part number, U, V = value / 255."""
    t, was_np = _as_tensor(iuv_uint8)
    if t.dtype != torch.uint8 or t.shape[-1] != 3:
        raise ValueError(f"decode_iuv: expected (...,3) uint8, got {tuple(t.shape)} {t.dtype}")
    if t.numel() and int(t[..., 0].max()) > NUM_PARTS:
        raise ValueError(f"decode_iuv: part index above {NUM_PARTS} in channel 0 (not an IUV image?)")
    t = t.to(torch.float32)
    out = torch.cat([t[..., :1], t[..., 1:] / 255.0], dim=-1)
    return out.numpy() if was_np else out


def iuv_to_onehot(iuv: torch.Tensor) -> torch.Tensor:
    """(B,H,W,3) float IUV -> (B,75,H,W) float32 one-hot tensor of the network (see module docstring)."""
    if iuv.ndim != 4 or iuv.shape[-1] != 3:
        raise ValueError(f"iuv_to_onehot: expected (B,H,W,3), got {tuple(iuv.shape)}")
    part = iuv[..., 0].round().long()
    if part.numel() and (int(part.min()) < 0 or int(part.max()) > NUM_PARTS):
        raise ValueError(f"iuv_to_onehot: part index outside 0..{NUM_PARTS}")
    onehot = torch.nn.functional.one_hot(part, NUM_I).to(torch.float32)  # (B,H,W,25)
    fg = onehot.clone()
    fg[..., 0] = 0.0  # background carries no U, V
    u = fg * iuv[..., 1:2].to(torch.float32)
    v = fg * iuv[..., 2:3].to(torch.float32)
    return torch.cat([onehot, u, v], dim=-1).permute(0, 3, 1, 2).contiguous()


def onehot_to_iuv(onehot: torch.Tensor) -> torch.Tensor:
    """(B,75,H,W) one-hot (or class scores) -> (B,H,W,3) float IUV: I = argmax of [0:25], U, V read from
    the channel of that part."""
    if onehot.ndim != 4 or onehot.shape[1] != ONEHOT_CHANNELS:
        raise ValueError(f"onehot_to_iuv: expected (B,{ONEHOT_CHANNELS},H,W), got {tuple(onehot.shape)}")
    part = onehot[:, :NUM_I].argmax(dim=1, keepdim=True)  # (B,1,H,W)
    u = onehot[:, NUM_I : 2 * NUM_I].gather(1, part) * (part > 0)
    v = onehot[:, 2 * NUM_I :].gather(1, part) * (part > 0)
    return torch.cat([part.to(onehot.dtype), u, v], dim=1).permute(0, 2, 3, 1).contiguous()


def coarse_index(part: torch.Tensor) -> torch.Tensor:
    """Map fine parts 0..24 (any shape, integer or float) to the 15 coarse classes 0..14 (PART_TO_COARSE)."""
    table = torch.tensor(PART_TO_COARSE, dtype=torch.int64, device=part.device)
    return table[part.round().long() if part.is_floating_point() else part.long()]


def downsample_iuv(
    iuv: torch.Tensor, height: int = 56, width: int = 56, mode: str = "nearest"
) -> torch.Tensor:
    """Downsample a (B,H,W,3) float IUV image to (B,height,width,3) keeping I an exact part number.

    mode "nearest": every output pixel copies the input pixel under its centre (I, U, V together).
    mode "area": the input size must be an integer multiple of the output; I is the most frequent part in
    each block (ties -> lowest part, background counts), U, V the mean over the block's pixels of that part.
    """
    if iuv.ndim != 4 or iuv.shape[-1] != 3:
        raise ValueError(f"downsample_iuv: expected (B,H,W,3), got {tuple(iuv.shape)}")
    B, H, W, _ = iuv.shape
    if mode == "nearest":
        rows = (
            ((torch.arange(height, device=iuv.device) + 0.5) * (H / height)).floor().long().clamp(max=H - 1)
        )
        cols = ((torch.arange(width, device=iuv.device) + 0.5) * (W / width)).floor().long().clamp(max=W - 1)
        return iuv[:, rows][:, :, cols]
    if mode != "area":
        raise ValueError(f"downsample_iuv: mode must be 'nearest' or 'area', got {mode!r}")
    if H % height or W % width:
        raise ValueError(f"downsample_iuv: area mode needs integer factors, got {H}x{W} -> {height}x{width}")
    kh, kw = H // height, W // width
    blocks = (
        iuv.reshape(B, height, kh, width, kw, 3).permute(0, 1, 3, 2, 4, 5).reshape(B, height, width, -1, 3)
    )
    part = blocks[..., 0].round().long()
    counts = torch.nn.functional.one_hot(part, NUM_I).sum(dim=-2)  # (B,h,w,25)
    winner = counts.argmax(dim=-1)  # first maximum -> lowest part on ties
    member = (part == winner[..., None]).to(iuv.dtype)
    uv = (blocks[..., 1:] * member[..., None]).sum(-2) / member.sum(-1, keepdim=True)
    uv = uv * (winner > 0)[..., None]
    return torch.cat([winner[..., None].to(iuv.dtype), uv], dim=-1)


class IUVRenderer:
    """Renders IUV images of a body model through its DensePose-style render mesh.

    Args:
        dense_parts: render vertices (part, uv, render_to_body) and render faces (see DensePartsLike).
        device: where the tables live and rendering runs.
        backend: rasterizer backend, "auto" | "warp" | "torch".
    """

    def __init__(
        self, dense_parts: DensePartsLike, device: str | torch.device = "cpu", backend: str = "auto"
    ):
        self.device = torch.device(device)
        self.backend = backend
        self.render_to_body = torch.as_tensor(dense_parts.render_to_body).long().to(self.device)
        self.faces = torch.as_tensor(dense_parts.faces).long().to(self.device)
        self.face_part = torch.as_tensor(dense_parts.face_part).long().to(self.device)
        self.corner_uv = face_uv(dense_parts).to(self.device)
        bad = (self.face_part < 1) | (self.face_part > NUM_PARTS)
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0])
            raise ValueError(
                f"IUVRenderer: face_part[{row}] = {int(self.face_part[row])} is outside 1..{NUM_PARTS}"
            )

    def rasterize(self, vertices: torch.Tensor, camera, height: int, width: int) -> Fragments:
        """Fragments of the render faces for (B,V,3) body vertices (metres) seen by ``camera``."""
        screen = camera.to_screen(vertices.to(self.device, torch.float32), height, width)
        return rasterize(screen[:, self.render_to_body], self.faces, height, width, backend=self.backend)

    def render(self, vertices: torch.Tensor, camera, height: int, width: int) -> torch.Tensor:
        """(B,H,W,3) float32 IUV image of (B,V,3) body vertices (metres, body frame) seen by ``camera``
        (WeakPerspectiveCamera or PerspectiveCamera, anything with ``to_screen``)."""
        fragments = self.rasterize(vertices, camera, height, width)
        return iuv_from_fragments(fragments, self.face_part, self.corner_uv)

    def render_encoded(self, vertices: torch.Tensor, camera, height: int, width: int) -> torch.Tensor:
        """(B,H,W,3) uint8 IUV codes (the ``iuv.png`` form), equal to ``encode_iuv(self.render(...))``."""
        fragments = self.rasterize(vertices, camera, height, width)
        return encoded_iuv_from_fragments(fragments, self.face_part, self.corner_uv)
