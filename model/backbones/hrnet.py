"""HRNet-W32/W48 with timm's parameter names (conv1, bn1, conv2, bn2, layer1, transition1..3, stage2..4 with
branches / fuse_layers), written here because timm cannot be installed with the CPU torch wheel.

The network keeps the 1/4-resolution branch as its output (48 channels at 56x56 from 224 for W48), like the
pose-estimation HRNet: the last module of stage 4 only fuses into branch 0. The classification neck of timm's
files (incre_modules, downsamp_modules, final_layer, classifier) and the unused fuse layers of that last
module are declared by `head_prefixes()` so loading a timm file reports them instead of failing.
"""

from __future__ import annotations

import torch
from torch import nn

from model.backbones.resnet import BasicBlock, Bottleneck, make_layer


def _conv_bn(cin: int, cout: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks followed by all-to-all fusion (sum of resampled branches)."""

    def __init__(self, channels: list[int], blocks: int, fuse_outputs: int):
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(make_layer(BasicBlock, c, c, blocks) for c in channels)
        fuse = nn.ModuleList()
        for i in range(fuse_outputs):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:  # lower resolution -> upsample
                    row.append(
                        nn.Sequential(
                            nn.Conv2d(channels[j], channels[i], 1, bias=False),
                            nn.BatchNorm2d(channels[i]),
                            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                        )
                    )
                elif j == i:
                    row.append(nn.Identity())
                else:  # higher resolution -> strided 3x3 convs
                    steps = [_conv_bn(channels[j], channels[j], 2, True) for _ in range(i - j - 1)]
                    steps.append(_conv_bn(channels[j], channels[i], 2, False))
                    row.append(nn.Sequential(*steps))
            fuse.append(row)
        self.fuse_layers = fuse
        self.fuse_act = nn.ReLU(inplace=False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for row in self.fuse_layers:
            y = row[0](xs[0])
            for j in range(1, len(xs)):
                y = y + row[j](xs[j])
            out.append(self.fuse_act(y))
        return out


class HRNet(nn.Module):
    """timm-layout HRNet trunk returning the highest-resolution branch.

    forward(x (B,3,H,W)) -> (B, width, H/4, W/4).
    """

    def __init__(
        self,
        width: int = 48,
        stem_width: int = 64,
        layer1_planes: int = 64,
        layer1_blocks: int = 4,
        stage_modules: tuple[int, int, int] = (1, 4, 3),
        stage_blocks: int = 4,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_width, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(stem_width, stem_width, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_width)
        self.act2 = nn.ReLU(inplace=True)
        self.layer1 = make_layer(Bottleneck, stem_width, layer1_planes, layer1_blocks)
        prev = [layer1_planes * Bottleneck.expansion]
        self._last_module = None
        for s, modules in enumerate(stage_modules, start=2):
            channels = [width * 2**b for b in range(s)]
            setattr(self, f"transition{s - 1}", self._transition(prev, channels))
            stage = []
            for m in range(modules):
                last = s == 4 and m == modules - 1
                stage.append(HighResolutionModule(channels, stage_blocks, 1 if last else len(channels)))
            setattr(self, f"stage{s}", nn.Sequential(*stage))
            prev = channels
        self._head_prefixes = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.") + tuple(
            f"stage4.{stage_modules[2] - 1}.fuse_layers.{i}." for i in range(1, 4)
        )
        self.out_channels = width
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _transition(prev: list[int], cur: list[int]) -> nn.ModuleList:
        layers = nn.ModuleList()
        for i, c in enumerate(cur):
            if i < len(prev):
                layers.append(nn.Identity() if prev[i] == c else _conv_bn(prev[i], c, 1, True))
            else:  # a new, lower-resolution branch from the last existing one
                steps = []
                for k in range(i + 1 - len(prev)):
                    out = c if k == i - len(prev) else prev[-1]
                    steps.append(_conv_bn(prev[-1], out, 2, True))
                layers.append(nn.Sequential(*steps))
        return layers

    def head_prefixes(self) -> tuple[str, ...]:
        """Key prefixes of a timm classification file that this trunk does not build."""
        return self._head_prefixes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in (2, 3, 4):
            transition = getattr(self, f"transition{s - 1}")
            new = []
            for i, t in enumerate(transition):
                src = xs[i] if i < len(xs) else xs[-1]
                new.append(t(src))
            xs = getattr(self, f"stage{s}")(new)
        return xs[0]


def build_hrnet(cfg) -> HRNet:
    """An HRNet from a `model.config.HRNetConfig`, loading `cfg.pretrained` (timm layout) if set."""
    from model.backbones.weights import load_backbone_weights

    net = HRNet(
        cfg.width,
        cfg.stem_width,
        cfg.layer1_planes,
        cfg.layer1_blocks,
        tuple(cfg.stage_modules),
        cfg.stage_blocks,
    )
    if cfg.pretrained:
        load_backbone_weights(net, cfg.pretrained, net.head_prefixes())
    return net
