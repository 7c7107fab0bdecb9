"""Published backbone files load into our HRNet / ResNet-18: the official pose_hrnet and timm HRNet layouts,
torchvision's ResNet-18. The files here are generated: key listings written from the sources' naming rules
(HRNet's pose_hrnet.py, timm's hrnet.py, torchvision's resnet.py), shapes from our modules, one tensor set to
a known pattern and looked for in the parameter it belongs to."""

from __future__ import annotations

import argparse
import logging
import re

import pytest
import torch

from model.backbones import HRNet, ResNet, WeightKeyError
from model.backbones.pretrained import PretrainedMissing, hrnet_layout, load_pretrained
from model.training.config import PretrainedConfig, load_train_config
from model.training.init import load_pretrained_backbones
from tests.test_model_backbones import torchvision_resnet18_keys

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
TINY_HRNET = {
    "width": 8,
    "stem_width": 16,
    "layer1_planes": 8,
    "layer1_blocks": 1,
    "stage_modules": (1, 1, 1),
}


def _conv_bn(prefix: str) -> list[str]:
    return [f"{prefix}0.weight"] + [f"{prefix}1.{k}" for k in BN]


def official_pose_hrnet_keys(
    layer1_blocks: int, stage_modules: tuple[int, int, int], blocks: int
) -> list[str]:
    """The state-dict keys of the HRNet authors' PoseHighResolutionNet (pose_hrnet.py), from its rules:
    stem conv1/bn1/conv2/bn2; layer1 Bottlenecks (downsample in block 0); transitionN.i.0/1 where a branch
    changes width, transitionN.i.0.0/1 for a new branch; stageS.m.branches.i.b BasicBlocks; fuse_layers.i.j
    (.0 conv + .1 bn upwards, .k.0 / .k.1 strided convs downwards), only i = 0 in the last module of stage 4;
    final_layer (the keypoint heatmaps)."""
    keys = ["conv1.weight", *[f"bn1.{k}" for k in BN], "conv2.weight", *[f"bn2.{k}" for k in BN]]
    for b in range(layer1_blocks):
        for c in (1, 2, 3):
            keys += [f"layer1.{b}.conv{c}.weight"] + [f"layer1.{b}.bn{c}.{k}" for k in BN]
    keys += _conv_bn("layer1.0.downsample.")
    keys += _conv_bn("transition1.0.") + _conv_bn("transition1.1.0.")
    keys += _conv_bn("transition2.2.0.") + _conv_bn("transition3.3.0.")
    for s, modules in zip((2, 3, 4), stage_modules):
        for m in range(modules):
            p = f"stage{s}.{m}."
            for i in range(s):
                for b in range(blocks):
                    for c in (1, 2):
                        keys += [f"{p}branches.{i}.{b}.conv{c}.weight"]
                        keys += [f"{p}branches.{i}.{b}.bn{c}.{k}" for k in BN]
            outputs = 1 if (s == 4 and m == modules - 1) else s
            for i in range(outputs):
                for j in range(s):
                    if j > i:
                        keys += _conv_bn(f"{p}fuse_layers.{i}.{j}.")
                    for k in range(i - j):
                        keys += _conv_bn(f"{p}fuse_layers.{i}.{j}.{k}.")
    return keys + ["final_layer.weight", "final_layer.bias"]


# Keys of timm's hrnet_w48 (HRNet-Image-Classification names) beyond the pose trunk, a few of each kind.
TIMM_EXTRA = {
    "incre_modules.0.0.conv1.weight": (32, 8, 1, 1),
    "incre_modules.3.0.downsample.1.running_var": (1024,),
    "downsamp_modules.0.0.weight": (256, 128, 3, 3),
    "final_layer.0.weight": (2048, 1024, 1, 1),
    "final_layer.1.running_mean": (2048,),
    "classifier.weight": (1000, 2048),
    "classifier.bias": (1000,),
    "stage4.0.fuse_layers.1.0.0.0.weight": (16, 8, 3, 3),  # the classifier fuses into every branch
    "stage4.0.fuse_layers.3.2.0.0.weight": (32, 32, 3, 3),
}


def _pattern(shape) -> torch.Tensor:
    n = int(torch.tensor(shape).prod())
    return (torch.arange(n, dtype=torch.float32) / n - 0.5).reshape(shape)


def _file_from(keys, shapes: dict, extra_shapes: dict, path, pattern_key: str) -> dict[str, torch.Tensor]:
    state = {}
    for k in keys:
        shape = shapes[k] if k in shapes else extra_shapes[k]
        state[k] = (
            torch.zeros(shape, dtype=torch.long) if k.endswith("num_batches_tracked") else torch.randn(shape)
        )
    state[pattern_key] = _pattern(state[pattern_key].shape)
    torch.save(state, path)
    return state


def _hrnet() -> HRNet:
    return HRNet(**TINY_HRNET, stage_blocks=1)


def test_official_pose_hrnet_layout_is_our_trunk_plus_the_keypoint_head():
    listed = official_pose_hrnet_keys(1, (1, 1, 1), 1)
    assert sorted(set(_hrnet().state_dict()) | {"final_layer.weight", "final_layer.bias"}) == sorted(listed)
    assert len(listed) == len(set(listed))


def test_official_pose_hrnet_file_loads_and_drops_final_layer(tmp_path):
    net = _hrnet()
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    key = "stage3.0.fuse_layers.2.0.1.0.weight"  # a downward fuse, two strided convs
    path = tmp_path / "pose_hrnet_w48_256x192.pth"
    state = _file_from(
        official_pose_hrnet_keys(1, (1, 1, 1), 1),
        shapes,
        {"final_layer.weight": (17, 8, 1, 1), "final_layer.bias": (17,)},
        path,
        key,
    )
    assert hrnet_layout(state, "f") == "hrnet_official"
    dropped = load_pretrained(net, path)
    assert dropped == ["final_layer.bias", "final_layer.weight"]
    assert torch.equal(net.stage3[0].fuse_layers[2][0][1][0].weight, _pattern(shapes[key]))


def test_timm_hrnet_file_loads_and_drops_the_classification_neck(tmp_path):
    net = _hrnet()
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    trunk = [k for k in official_pose_hrnet_keys(1, (1, 1, 1), 1) if not k.startswith("final_layer.")]
    key = "transition2.2.0.0.weight"
    path = tmp_path / "hrnet_w48.pth"
    state = _file_from(trunk + list(TIMM_EXTRA), shapes, TIMM_EXTRA, path, key)
    assert hrnet_layout(state, "f") == "hrnet_timm"
    dropped = load_pretrained(net, path, layout="auto")
    assert sorted(dropped) == sorted(TIMM_EXTRA)
    assert torch.equal(net.transition2[2][0][0].weight, _pattern(shapes[key]))


def test_torchvision_resnet18_file_drops_fc_missing_stages_and_an_adapted_stem(tmp_path):
    # resnet18-5c106cde.pth predates BatchNorm's num_batches_tracked
    keys = [k for k in torchvision_resnet18_keys() if not k.endswith("num_batches_tracked")]
    shapes = {k: v.shape for k, v in ResNet(18, width=8, num_classes=1000).state_dict().items()}
    key = "layer3.1.conv2.weight"
    path = tmp_path / "resnet18-5c106cde.pth"
    state = _file_from(keys, shapes, {}, path, key)
    local = ResNet(18, width=8, num_stages=3, in_channels=64)  # a 1x1 stem in front feeds conv1 64 channels
    conv1 = local.conv1.weight.clone()
    dropped = load_pretrained(local, path)
    assert "fc.weight" in dropped and "layer4.0.conv1.weight" in dropped and "conv1.weight" in dropped
    assert torch.equal(local.layer3[1].conv2.weight, _pattern(shapes[key]))
    assert torch.equal(local.conv1.weight, conv1)  # kept its initialisation
    assert local.bn1.num_batches_tracked.item() == 0
    glob = ResNet(18, width=8, num_classes=13)
    fc = glob.fc.weight.clone()
    load_pretrained(glob, path)
    assert torch.equal(glob.conv1.weight, state["conv1.weight"]) and torch.equal(glob.fc.weight, fc)


def test_a_wrong_shape_is_refused_naming_the_key(tmp_path):
    net = _hrnet()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["final_layer.weight"] = torch.zeros(17, 8, 1, 1)
    state["stage2.0.branches.1.0.conv1.weight"] = torch.zeros(32, 32, 3, 3)  # a W16 file, say
    path = tmp_path / "w16.pth"
    torch.save(state, path)
    with pytest.raises(
        WeightKeyError, match=r"stage2\.0\.branches\.1\.0\.conv1\.weight: file \(32, 32, 3, 3\)"
    ):
        load_pretrained(net, path)


def test_a_file_that_is_not_plain_tensors_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "hook": argparse.Namespace(run="code")}, path)
    with pytest.raises(WeightKeyError, match="not a weights-only torch file"):
        load_pretrained(_hrnet(), path)


def _tiny_backbones():
    from model.config import tiny_config
    from model.danet import DaNet

    net = DaNet(tiny_config())
    hrnets = [m for m in net.modules() if isinstance(m, HRNet)]
    resnets = [m for m in net.modules() if isinstance(m, ResNet) and m.depth == 18]
    return net, hrnets, resnets


def test_absent_files_are_one_line_each_and_strict_mode_fails(tmp_path, caplog):
    net, hrnets, resnets = _tiny_backbones()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = PretrainedConfig(
        hrnet=str(tmp_path / "pose_hrnet_w48_256x192.pth"), resnet18=str(tmp_path / "r18.pth")
    )
    with caplog.at_level(logging.WARNING):
        assert load_pretrained_backbones(net, cfg) == {}
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert "pose_hrnet_w48_256x192.pth not found" in lines[0] and "deep-high-resolution-net" in lines[0]
    assert "r18.pth not found" in lines[1] and "download.pytorch.org" in lines[1]
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    cfg.strict = True
    with pytest.raises(PretrainedMissing, match="pose_hrnet_w48_256x192.pth not found"):
        load_pretrained_backbones(net, cfg)


def test_the_network_takes_the_files_into_its_hrnet_and_every_resnet18(tmp_path):
    net, (hrnet,), resnets = _tiny_backbones()
    assert len(resnets) >= 2  # global and local streams
    h_shapes = {k: v.shape for k, v in hrnet.state_dict().items()}
    h_key = "stage2.0.fuse_layers.0.1.0.weight"
    _file_from(
        [k for k in h_shapes] + ["final_layer.weight", "final_layer.bias"],
        h_shapes,
        {"final_layer.weight": (17, hrnet.out_channels, 1, 1), "final_layer.bias": (17,)},
        tmp_path / "hr.pth",
        h_key,
    )
    # the tiny preset's ResNet-18s have one block per stage: a torchvision file cut to blocks 0
    width, layers = resnets[0].width, resnets[0].layers
    assert all((r.width, r.layers) == (width, layers) for r in resnets) and layers == (1, 1, 1, 1)
    r_shapes = {k: v.shape for k, v in ResNet(18, width, layers, num_classes=1000).state_dict().items()}
    r_keys = [k for k in torchvision_resnet18_keys() if not re.match(r"layer\d\.1\.", k)]
    r_key = "layer2.0.downsample.0.weight"
    _file_from(r_keys, r_shapes, {}, tmp_path / "r18.pth", r_key)
    cfg = PretrainedConfig(hrnet=str(tmp_path / "hr.pth"), resnet18=str(tmp_path / "r18.pth"), strict=True)
    loaded = load_pretrained_backbones(net, cfg)
    assert len(loaded) == 1 + len(resnets)
    assert torch.equal(hrnet.stage2[0].fuse_layers[0][1][0].weight, _pattern(h_shapes[h_key]))
    for r in resnets:
        assert torch.equal(r.layer2[0].downsample[0].weight, _pattern(r_shapes[r_key]))


def test_paper_config_names_the_files_under_weights_pretrained():
    cfg = load_train_config("configs/train/paper.yaml").model.init.pretrained
    assert cfg.hrnet == "weights/pretrained/pose_hrnet_w48_256x192.pth"
    assert cfg.resnet18 == "weights/pretrained/resnet18-5c106cde.pth"
    assert (cfg.hrnet_layout, cfg.strict) == ("auto", False)
    demo = load_train_config("configs/train/demo.yaml").model.init.pretrained
    assert demo.hrnet is None and demo.resnet18 is None
