"""Rotation representations: 6D (first two columns, Zhou et al. 2019) <-> matrix, axis-angle <-> matrix.

All functions take any leading batch shape (...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3): Gram-Schmidt on the two columns a1 = x[..., 0:3], a2 = x[..., 3:6]."""
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(r: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, concatenated."""
    return torch.cat([r[..., :, 0], r[..., :, 1]], dim=-1)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis * angle (radians) -> (..., 3, 3) by Rodrigues' formula (exact at angle 0)."""
    angle = aa.norm(dim=-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
    k = aa / aa.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    zero = torch.zeros_like(k[..., 0])
    kx = torch.stack(
        [zero, -k[..., 2], k[..., 1], k[..., 2], zero, -k[..., 0], -k[..., 1], k[..., 0], zero], dim=-1
    ).reshape(*k.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(kx)
    return eye + torch.sin(angle) * kx + (1 - torch.cos(angle)) * (kx @ kx)


def matrix_to_axis_angle(r: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 3) axis * angle, angle in [0, pi]; stable near 0 and near pi."""
    trace = r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2]
    cos = ((trace - 1) / 2).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    skew = torch.stack(
        [r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1
    )
    sin = torch.sin(angle)
    small = sin.abs() < 1e-4
    # general case: axis from the skew part; near 0 the angle/(2 sin) factor tends to 1/2.
    factor = torch.where(small, 0.5 + angle**2 / 12, angle / (2 * sin.clamp_min(1e-12) * (~small) + small))
    out = skew * factor.unsqueeze(-1)
    # near pi the skew part vanishes: axis from the diagonal of (R + I) / 2 = a a^T.
    near_pi = small & (cos < 0)
    if near_pi.any():
        sym = (r + torch.eye(3, dtype=r.dtype, device=r.device)) / 2  # = a a^T at angle pi
        i = torch.diagonal(sym, dim1=-2, dim2=-1).argmax(-1, keepdim=True)  # the largest |a_i|
        row = torch.gather(sym, -2, i.unsqueeze(-1).expand(*i.shape[:-1], 1, 3)).squeeze(-2)  # a_i * a
        axis = F.normalize(row, dim=-1)
        out = torch.where(near_pi.unsqueeze(-1), axis * angle.unsqueeze(-1), out)
    return out


def orthogonality_error(r: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (...): squared Frobenius norm of R R^T - I (0 for a rotation)."""
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    return ((r @ r.transpose(-1, -2) - eye) ** 2).sum((-1, -2))
