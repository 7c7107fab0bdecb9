"""Backbones with torchvision (ResNet) and timm (HRNet) parameter names, and their weight loading."""

from model.backbones.hrnet import HRNet, build_hrnet
from model.backbones.resnet import ResNet, build_resnet
from model.backbones.weights import WeightKeyError, load_backbone_weights, read_state_dict

__all__ = [
    "HRNet",
    "ResNet",
    "WeightKeyError",
    "build_hrnet",
    "build_resnet",
    "load_backbone_weights",
    "read_state_dict",
]
