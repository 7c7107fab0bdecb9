"""Backbones: torchvision / timm parameter layouts, weight loading, output sizes."""

from __future__ import annotations

import pytest
import torch

from model.backbones import HRNet, ResNet, WeightKeyError, build_resnet, load_backbone_weights
from model.config import HRNetConfig, ResNetConfig


def torchvision_resnet18_keys() -> list[str]:
    """torchvision's ResNet-18 state-dict keys, written out from its naming rules (not from our module)."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["conv1.weight"] + [f"bn1.{k}" for k in bn]
    for layer in range(1, 5):
        for block in range(2):
            p = f"layer{layer}.{block}."
            keys += [p + "conv1.weight"] + [p + f"bn1.{k}" for k in bn]
            keys += [p + "conv2.weight"] + [p + f"bn2.{k}" for k in bn]
            if layer > 1 and block == 0:
                keys += [p + "downsample.0.weight"] + [p + f"downsample.1.{k}" for k in bn]
    return keys + ["fc.weight", "fc.bias"]


def test_resnet18_matches_torchvision_layout_and_size():
    net = ResNet(18, num_classes=1000)
    assert sorted(net.state_dict()) == sorted(torchvision_resnet18_keys())
    assert sum(p.numel() for p in net.parameters()) == 11_689_512  # torchvision's resnet18
    assert net.state_dict()["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)


def test_resnet50_parameter_count_matches_torchvision():
    with torch.device("meta"):
        net = ResNet(50, num_classes=1000)
    assert sum(p.numel() for p in net.parameters()) == 25_557_032


def test_torchvision_layout_file_loads_into_headless_trunk(tmp_path):
    src = ResNet(18, width=8, num_classes=1000)
    state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in src.state_dict().items()}
    assert set(state) == set(torchvision_resnet18_keys())
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    net = build_resnet(ResNetConfig(depth=18, width=8, pretrained=str(path)), num_stages=3)
    assert torch.equal(net.state_dict()["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    with_head = build_resnet(ResNetConfig(depth=18, width=8, pretrained=str(path)), num_classes=13)
    assert torch.equal(with_head.state_dict()["conv1.weight"], state["conv1.weight"])
    assert with_head.fc.weight.shape == (13, 64)  # a fresh head, not the file's 1000-way classifier


def test_weight_mismatch_lists_missing_and_unexpected_keys():
    net = ResNet(18, width=8)
    state = dict(net.state_dict())
    state.pop("layer1.0.conv1.weight")
    state["layer9.weight"] = torch.zeros(1)
    with pytest.raises(WeightKeyError) as err:
        load_backbone_weights(net, state)
    assert "layer1.0.conv1.weight" in str(err.value) and "layer9.weight" in str(err.value)


def test_hrnet_timm_layout_and_head_keys_reported():
    net = HRNet(
        width=8, stem_width=16, layer1_planes=8, layer1_blocks=1, stage_modules=(1, 1, 1), stage_blocks=1
    )
    keys = set(net.state_dict())
    expected = {
        "conv1.weight", "bn1.weight", "conv2.weight", "bn2.running_var", "layer1.0.conv3.weight",
        "layer1.0.downsample.0.weight", "transition1.0.0.weight", "transition1.1.0.0.weight",
        "stage2.0.branches.1.0.conv2.weight", "stage2.0.fuse_layers.0.1.0.weight",
        "stage2.0.fuse_layers.1.0.0.0.weight", "transition2.2.0.0.weight",
        "stage3.0.fuse_layers.2.0.1.0.weight", "transition3.3.0.0.weight",
        "stage4.0.fuse_layers.0.3.1.weight",
    }  # fmt: skip
    assert expected <= keys
    assert not any(k.startswith("stage4.0.fuse_layers.1.") for k in keys)  # only branch 0 is output
    timm_file = dict(net.state_dict())
    timm_file["classifier.weight"] = torch.zeros(1000, 2048)
    timm_file["stage4.0.fuse_layers.1.0.0.0.weight"] = torch.zeros(16, 8, 3, 3)
    skipped = load_backbone_weights(net, timm_file, net.head_prefixes())
    assert skipped == ["classifier.weight", "stage4.0.fuse_layers.1.0.0.0.weight"]
    assert net.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 8, 8, 8)


def test_hrnet_w48_parameter_count():
    with torch.device("meta"):
        net = HRNet(**{k: v for k, v in vars(HRNetConfig()).items() if k != "pretrained"})
    # pose-estimation HRNet-W48 trunk (timm's hrnet_w48 minus its classification neck): 63.6 M parameters
    assert 63.0e6 < sum(p.numel() for p in net.parameters()) < 64.0e6


def test_hrnet_w32_branch_widths():
    with torch.device("meta"):
        net = HRNet(width=32)
    state = net.state_dict()
    assert state["transition1.0.0.weight"].shape == (32, 256, 3, 3)
    assert state["transition3.3.0.0.weight"].shape == (256, 128, 3, 3)
    assert net.out_channels == 32


@pytest.mark.parametrize("stem_stride, side", [(4, 2), (2, 4), (1, 8)])
def test_resnet_stem_stride_keeps_parameters_and_sets_resolution(stem_stride, side):
    torchvision_stem = ResNet(18, width=8, num_stages=3)
    net = ResNet(18, width=8, num_stages=3, stem_stride=stem_stride)
    net.load_state_dict(torchvision_stem.state_dict())  # same keys and shapes: pretrained files still load
    assert net.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 32, side, side)
    built = build_resnet(ResNetConfig(depth=18, width=8, stem_stride=stem_stride), num_stages=3)
    assert built.eval()(torch.randn(1, 3, 32, 32)).shape[-1] == side


def test_resnet_rejects_unknown_stem_stride():
    with pytest.raises(ValueError, match="stem_stride"):
        ResNet(18, width=8, stem_stride=3)
