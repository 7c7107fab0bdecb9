"""Global stream (camera + shape) and local streams (per-joint rotation features), Section 4.2."""

from __future__ import annotations

import torch
from torch import nn

from model.backbones import build_resnet
from model.backbones.resnet import make_layer


def input_stem(
    kind: str, in_channels: int, adapter_channels: int, stem_channels: int
) -> tuple[nn.Module, int]:
    """The layer in front of a stream's ResNet and the channels it hands on.

    "adapter" (ours): a linear 1x1 conv with bias to `adapter_channels` (3 keeps torchvision's stem, so
    ImageNet weights load). "conv_bn_relu" (the authors'): 1x1 conv without bias -> `stem_channels`, BN, ReLU.
    """
    if kind == "adapter":
        return nn.Conv2d(in_channels, adapter_channels, 1), adapter_channels
    if kind == "conv_bn_relu":
        stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 1, bias=False), nn.BatchNorm2d(stem_channels), nn.ReLU(True)
        )
        return stem, stem_channels
    raise ValueError(f"unknown stream stem {kind!r}")


def entry_of(stream: nn.Module) -> nn.Module:
    """A stream's input stem: `adapter` (ours) or `stem` (the authors')."""
    return stream.adapter if hasattr(stream, "adapter") else stream.stem


class GlobalStream(nn.Module):
    """Global IUV maps (B, Cin, H, W) -> (B, 13) offsets of [cam (3), betas (10)].

    `input_stem` (module `adapter` or `stem`) maps the IUV channels to the ResNet's input.
    """

    def __init__(
        self,
        resnet_cfg,
        in_channels: int,
        outputs: int = 13,
        adapter_channels: int = 3,
        stem: str = "adapter",
        stem_channels: int = 64,
    ):
        super().__init__()
        layer, width = input_stem(stem, in_channels, adapter_channels, stem_channels)
        setattr(self, "adapter" if stem == "adapter" else "stem", layer)
        self.resnet = build_resnet(resnet_cfg, num_classes=outputs, in_channels=width)
        with torch.no_grad():  # start at the mean parameters
            self.resnet.fc.weight.mul_(0.01)
            self.resnet.fc.bias.zero_()

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.resnet(entry_of(self)(maps))


class LocalStreams(nn.Module):
    """Partial maps (B, J, Cin, h, w) -> rotation features (B, J, C).

    One ResNet up to layer3 is shared by all joints (run on the batch-concatenated (B*J) maps); layer4 is
    grouped (groups = J), i.e. an independent layer4 per joint, producing C channels per joint.
    """

    def __init__(
        self,
        resnet_cfg,
        in_channels: int,
        joints: int,
        channels: int,
        adapter_channels: int = 3,
        stem: str = "adapter",
        stem_channels: int = 64,
    ):
        super().__init__()
        self.joints = joints
        layer, width = input_stem(stem, in_channels, adapter_channels, stem_channels)
        setattr(self, "adapter" if stem == "adapter" else "stem", layer)
        self.resnet = build_resnet(resnet_cfg, num_stages=3, in_channels=width)
        block = self.resnet.block
        if channels % block.expansion:
            raise ValueError(f"rotation feature width {channels} must divide by {block.expansion}")
        self.layer4 = make_layer(
            block, joints * self.resnet.out_channels, joints * channels // block.expansion,
            self.resnet.layers[3], stride=2, groups=joints,
        )  # fmt: skip
        self.channels = channels

    def forward(self, partial: torch.Tensor) -> torch.Tensor:
        b, j = partial.shape[:2]
        x = self.resnet(entry_of(self)(partial.flatten(0, 1)))  # (B*J, C3, h', w')
        x = self.layer4(
            x.reshape(b, j * x.shape[1], *x.shape[2:])
        )  # joint-major channels -> per-joint groups
        return x.mean((2, 3)).reshape(b, j, self.channels)
