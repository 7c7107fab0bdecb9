"""IUV estimator (Section 4.1): backbone -> 1/4-resolution features -> U, V, I, coarse index, joint heatmaps.

Backbones: HRNet (paper; its 1/4 branch) or a ResNet "simple baseline" (ResNet trunk at 1/32 + three stride-2
deconvolutions back to 1/4). Joint positions are the soft-argmax of softmax(beta * heatmap).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.backbones import build_hrnet, build_resnet
from model.backbones.resnet import Bottleneck, make_layer
from pipeline.body.constants import NUM_COARSE_PARTS, NUM_JOINTS, NUM_PARTS

NUM_I = NUM_PARTS + 1  # 25 classes with background
NUM_COARSE = NUM_COARSE_PARTS + 1  # 15


def conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
    )


def soft_argmax(heatmaps: torch.Tensor, beta: float = 10.0, grid: str = "centers") -> torch.Tensor:
    """(B, J, H, W) heatmaps -> (B, J, 2) expected (x, y) of softmax(beta * heatmap), in [-1, 1].

    grid "centers": pixel i sits at (i + 0.5) / W * 2 - 1 (align_corners=False convention); "index": at
    i / W * 2 - 1 (the authors' integral of pixel indices, divided by W / 2, minus 1)."""
    b, j, h, w = heatmaps.shape
    prob = F.softmax(beta * heatmaps.reshape(b, j, h * w), dim=-1).reshape(b, j, h, w)
    offset = {"centers": 0.5, "index": 0.0}[grid]
    xs = (torch.arange(w, device=heatmaps.device, dtype=prob.dtype) + offset) / w * 2 - 1
    ys = (torch.arange(h, device=heatmaps.device, dtype=prob.dtype) + offset) / h * 2 - 1
    return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], dim=-1)


def iuv_maps(index_logits: torch.Tensor, u: torch.Tensor, v: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Predicted maps in the one-hot layout [P | U * P | V * P] with P = softmax(index), background U/V zero.

    index_logits, u, v: (..., K, H, W) with the part axis at `dim` -> (..., 3K, H, W).
    """
    p = F.softmax(index_logits, dim=dim)
    fg = torch.ones_like(p)
    fg.narrow(dim, 0, 1).zero_()
    return torch.cat([p, u * p * fg, v * p * fg], dim=dim)


def onehot_uvi_maps(
    index_logits: torch.Tensor, u: torch.Tensor, v: torch.Tensor, dim: int = 1
) -> torch.Tensor:
    """The authors' stream input [U * H | V * H | H], H the hard one-hot of the argmax part (background
    included: its U/V channels are kept under H's background channel). (..., K, H, W) -> (..., 3K, H, W).
    H carries no gradient; U and V do."""
    k = index_logits.shape[dim]
    hard = F.one_hot(index_logits.argmax(dim), k).movedim(-1, dim).to(u.dtype)
    return torch.cat([u * hard, v * hard, hard], dim=dim)


def iuv_image(index_logits: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Predicted (B, 25, H, W) heads -> (B, H, W, 3) float IUV image (I = argmax part, U, V of that part),
    the layout pipeline.render.iuv encodes to iuv.png."""
    from pipeline.render.iuv import onehot_to_iuv

    return onehot_to_iuv(iuv_maps(index_logits, u, v))


class IUVHeads(nn.Module):
    """Shared 3x3 conv, then 1x1 heads: index (K), U (K), V (K) and optional extra heads."""

    def __init__(self, cin: int, channels: int, parts: int, extra: dict[str, int] | None = None):
        super().__init__()
        self.neck = conv_bn_relu(cin, channels)
        self.index = nn.Conv2d(channels, parts, 1)
        self.u = nn.Conv2d(channels, parts, 1)
        self.v = nn.Conv2d(channels, parts, 1)
        self.extra = nn.ModuleDict({k: nn.Conv2d(channels, n, 1) for k, n in (extra or {}).items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.neck(x)
        out = {"features": f, "index_logits": self.index(f), "u": self.u(f), "v": self.v(f)}
        out.update({k: head(f) for k, head in self.extra.items()})
        return out


class DirectIUVHeads(nn.Module):
    """The authors' heads on the backbone features (B, C, H, W): 3x3 convs (with bias) for index (25), U,
    V (25) and the coarse index (15); heatmaps (24) from 3 bottleneck blocks (C/4 planes) + a 3x3 conv.
    `features` passes the backbone features through (the RoIs pool them)."""

    def __init__(self, cin: int):
        super().__init__()
        if cin % Bottleneck.expansion:
            raise ValueError(f"direct IUV heads need features divisible by 4, got {cin}")
        self.index = nn.Conv2d(cin, NUM_I, 3, padding=1)
        self.u = nn.Conv2d(cin, NUM_I, 3, padding=1)
        self.v = nn.Conv2d(cin, NUM_I, 3, padding=1)
        self.coarse = nn.Conv2d(cin, NUM_COARSE, 3, padding=1)
        self.heatmaps = nn.Sequential(
            make_layer(Bottleneck, cin, cin // Bottleneck.expansion, 3),
            nn.Conv2d(cin, NUM_JOINTS, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "features": x,
            "index_logits": self.index(x),
            "u": self.u(x),
            "v": self.v(x),
            "coarse_logits": self.coarse(x),
            "heatmaps": self.heatmaps(x),
        }


class GroupedPartialHead(nn.Module):
    """The authors' partial IUV head: a 3x3 conv per joint (groups = J) on the J RoI crops stacked along
    channels. forward((B, J, C, r, r)) -> index_logits, u, v (B, J, K, r, r); the conv's output channels
    of joint j are [U (K) | V (K) | I (K)] at j * 3K."""

    def __init__(self, cin: int, parts: int, joints: int = NUM_JOINTS):
        super().__init__()
        self.joints, self.parts = joints, parts
        self.conv = nn.Conv2d(joints * cin, joints * 3 * parts, 3, padding=1, groups=joints)

    def forward(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        b, j, _, h, w = pooled.shape
        y = self.conv(pooled.flatten(1, 2)).reshape(b, j, 3, self.parts, h, w)
        return {"u": y[:, :, 0], "v": y[:, :, 1], "index_logits": y[:, :, 2]}


class IUVEstimator(nn.Module):
    """image (B, 3, S, S) -> dict: features (B, Cf, S/4, S/4) (the RoIs pool these), index_logits (B,25,..), u, v (B,25,..),
    coarse_logits (B,15,..), heatmaps (B,24,..), joints2d (B,24,2) in [-1, 1]."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        if cfg.arch == "hrnet":
            self.backbone: nn.Module = build_hrnet(cfg.hrnet)
            cin = self.backbone.out_channels
            self.deconv = nn.Identity()
        elif cfg.arch == "resnet":
            self.backbone = build_resnet(cfg.resnet)
            layers, cin = [], self.backbone.out_channels
            for _ in range(3):
                layers += [
                    nn.ConvTranspose2d(cin, cfg.deconv_channels, 4, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(cfg.deconv_channels),
                    nn.ReLU(True),
                ]
                cin = cfg.deconv_channels
            self.deconv = nn.Sequential(*layers)
        else:
            raise ValueError(f"unknown IUV estimator arch {cfg.arch!r}")
        if cfg.head == "direct":
            self.heads: nn.Module = DirectIUVHeads(cin)
            self.out_channels = cin
        else:
            self.heads = IUVHeads(
                cin, cfg.head_channels, NUM_I, {"coarse_logits": NUM_COARSE, "heatmaps": NUM_JOINTS}
            )
            self.out_channels = cfg.head_channels

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.heads(self.deconv(self.backbone(image)))
        out["joints2d"] = soft_argmax(out["heatmaps"], self.cfg.heatmap_beta, self.cfg.heatmap_grid)
        return out
