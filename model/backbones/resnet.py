"""ResNet-18/34/50/101 with torchvision's parameter names (conv1, bn1, layer1.0.conv1, downsample.0/1, fc).

Written here because torchvision cannot be installed with the CPU torch wheel used by this project. `width`
scales every stage (64 is torchvision's), so tests can run a narrow network of the same structure.
"""

from __future__ import annotations

import torch
from torch import nn

STANDARD_LAYERS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
}


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, groups=groups, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual; `groups` > 1 makes independent per-group blocks."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, groups=1):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride, groups)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, 1, groups)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, torchvision v1.5) -> 1x1 with 4x expansion and a residual."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, groups=1):
        super().__init__()
        self.conv1 = conv1x1(cin, planes, 1, groups)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, groups)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4, 1, groups)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_layer(
    block: type[BasicBlock] | type[Bottleneck], cin: int, planes: int, blocks: int, stride: int = 1, groups=1
) -> nn.Sequential:
    """A torchvision-style stage: the first block may stride and project (downsample.0 conv, .1 BN)."""
    downsample = None
    cout = planes * block.expansion
    if stride != 1 or cin != cout:
        downsample = nn.Sequential(conv1x1(cin, cout, stride, groups), nn.BatchNorm2d(cout))
    layers = [block(cin, planes, stride, downsample, groups)]
    layers += [block(cout, planes, 1, None, groups) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def block_for_depth(depth: int) -> type[BasicBlock] | type[Bottleneck]:
    if depth not in STANDARD_LAYERS:
        raise ValueError(f"ResNet depth must be one of {sorted(STANDARD_LAYERS)}, got {depth}")
    return BasicBlock if depth < 50 else Bottleneck


class ResNet(nn.Module):
    """torchvision-layout ResNet trunk.

    Args:
        depth: 18, 34, 50 or 101.
        width: channels of the stem and of layer1's planes (64 in torchvision); stage i has width * 2**i
            planes.
        layers: blocks per stage; default the standard count for `depth`.
        num_stages: build layer1..layer{num_stages} (the local stream stops at 3).
        num_classes: if given, add `avgpool` + `fc` (num_classes outputs).
        in_channels: input channels of conv1.
        stem_stride: 4 is torchvision's stem (7x7 conv stride 2, then 3x3 max-pool stride 2); 2 drops the
            max-pool; 1 also runs conv1 at stride 1. Parameters are the same for all three, so torchvision
            weights load into any of them. Small inputs (the tiny preset's 8x8 partial maps) need 1 to keep
            the paper's feature-map sizes (32x32 partial maps at stride 4).

    forward(x (B,in_channels,H,W)) -> (B, num_classes) with a head, else the last stage's map
    (B, out_channels, H * 2 / (stem_stride * 2**num_stages) ... ) -- H/32 for four stages and stride 4.
    """

    def __init__(
        self,
        depth: int = 18,
        width: int = 64,
        layers: tuple[int, ...] | None = None,
        num_stages: int = 4,
        num_classes: int | None = None,
        in_channels: int = 3,
        stem_stride: int = 4,
    ):
        super().__init__()
        if stem_stride not in (1, 2, 4):
            raise ValueError(f"ResNet stem_stride must be 1, 2 or 4, got {stem_stride}")
        block = block_for_depth(depth)
        layers = tuple(layers or STANDARD_LAYERS[depth])
        if len(layers) != 4:
            raise ValueError(f"ResNet needs 4 stage block counts, got {layers}")
        self.depth, self.width, self.layers = depth, width, layers
        self.block = block
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=min(stem_stride, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem_stride == 4 else nn.Identity()
        cin = width
        self.num_stages = num_stages
        for i in range(num_stages):
            layer = make_layer(block, cin, width * 2**i, layers[i], stride=1 if i == 0 else 2)
            setattr(self, f"layer{i + 1}", layer)
            cin = width * 2**i * block.expansion
        self.out_channels = cin
        self.fc: nn.Linear | None = None
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def head_prefixes(self) -> tuple[str, ...]:
        """Key prefixes of a full torchvision file that this trunk does not build."""
        missing = tuple(f"layer{i + 1}." for i in range(self.num_stages, 4))
        return missing + (() if self.fc is not None else ("fc.",))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        if self.fc is None:
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_resnet(cfg, num_stages: int = 4, num_classes: int | None = None, in_channels: int = 3) -> ResNet:
    """A ResNet from a `model.config.ResNetConfig`, loading `cfg.pretrained` (torchvision layout) if set."""
    from model.backbones.weights import load_backbone_weights

    net = ResNet(cfg.depth, cfg.width, cfg.layers, num_stages, num_classes, in_channels, cfg.stem_stride)
    if cfg.pretrained:
        # A fresh head (e.g. 13 outputs instead of 1000) never takes the classifier's weights.
        prefixes = net.head_prefixes() + (("fc.",) if num_classes is not None else ())
        if num_classes is not None:
            head = net.fc
            net.fc = None
            load_backbone_weights(net, cfg.pretrained, prefixes)
            net.fc = head
        else:
            load_backbone_weights(net, cfg.pretrained, prefixes)
    return net
