"""Pretrained backbone files as published, and the key layout of each: what loads, what is dropped.

The paper's IUV estimator starts from an HRNet-W48 trained for COCO keypoints and its streams from an
ImageNet ResNet-18 (the authors' config: data/pretrained_model/pose_hrnet_w48_256x192.pth,
resnet18-5c106cde.pth). Our backbones carry the parameter names of those files (model.backbones.hrnet,
.resnet), so a layout here is the list of the file's keys that this project does not build, never a rename:

- "hrnet_official": the HRNet authors' pose_hrnet (leoxiaobin/deep-high-resolution-net.pytorch), e.g.
  pose_hrnet_w48_256x192.pth: the trunk plus `final_layer.{weight,bias}`, the 17 COCO keypoint heatmaps.
  Its last stage-4 module already fuses into branch 0 only, like ours.
- "hrnet_timm": timm's hrnet_w48 (ImageNet; the key names of HRNet-Image-Classification, which the authors'
  hrnet_w48-imgnet file also has): the trunk plus the classification neck (incre_modules, downsamp_modules,
  final_layer, classifier) and the last module's fuse layers into branches 1-3 (`HRNet.head_prefixes()`).
- "resnet_torchvision": torchvision's resnet18-*.pth: the classifier `fc.*` is dropped (our heads are new),
  so are the stages a truncated trunk does not build (the local streams stop at layer3), and `conv1.weight`
  when our conv1 does not read 3 channels (a stem in front feeds it; the authors drop it there too, by shape).
  Files saved before PyTorch 0.4.1 have no BatchNorm `num_batches_tracked`; it starts at 0.

Every other difference is an error naming the keys (model.backbones.weights.load_backbone_weights); a file
that is not there is reported in one line saying where to get it, or is an error in strict mode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from model.backbones.hrnet import HRNet
from model.backbones.resnet import ResNet
from model.backbones.weights import WeightKeyError, load_backbone_weights, read_state_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """A published weight file: what it is and where to get it."""

    what: str
    where: str


SOURCES: dict[str, Source] = {
    "hrnet_official": Source(
        "HRNet-W48 trained for COCO keypoints, official HRNet layout (pose_hrnet_w48_256x192.pth)",
        "the HRNet model zoo of github.com/leoxiaobin/deep-high-resolution-net.pytorch (models/pytorch/pose_coco)",
    ),
    "hrnet_timm": Source(
        "HRNet-W48 trained on ImageNet, timm layout (hrnet_w48)",
        "timm's hrnet_w48 weights (huggingface.co/timm/hrnet_w48.ms_in1k, pytorch_model.bin)",
    ),
    "resnet_torchvision": Source(
        "ResNet-18 trained on ImageNet, torchvision layout (resnet18-5c106cde.pth or resnet18-f37072fd.pth)",
        "https://download.pytorch.org/models/resnet18-5c106cde.pth",
    ),
}


# The layout a file of each backbone kind is taken to have until its keys are read (an absent file's message).
DEFAULT_LAYOUT = {"hrnet": "hrnet_official", "resnet": "resnet_torchvision"}


class PretrainedMissing(FileNotFoundError):
    """A pretrained file named in the config is not there (strict mode)."""


def hrnet_layout(state: dict[str, torch.Tensor], source: str) -> str:
    """ "hrnet_timm" when the file has the classification neck, "hrnet_official" when it has the keypoint
    head `final_layer.weight` (K, C, 1, 1) and no neck; otherwise an error naming the file."""
    if any(k.startswith(("incre_modules.", "classifier.")) for k in state):
        return "hrnet_timm"
    head = state.get("final_layer.weight")
    if head is not None and head.dim() == 4 and head.shape[-2:] == (1, 1):
        return "hrnet_official"
    raise WeightKeyError(
        f"{source}: neither an official pose_hrnet file (a 1x1 `final_layer.weight` keypoint head) nor a timm "
        f"hrnet file (incre_modules / classifier); set hrnet_layout to say which"
    )


def dropped_prefixes(module: nn.Module, layout: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(key prefixes of a `layout` file that `module` does not take, prefixes of the module's own keys that
    keep their initialisation)."""
    if layout == "hrnet_official":
        return ("final_layer.",), ()
    if layout == "hrnet_timm":
        return module.head_prefixes(), ()
    if layout == "resnet_torchvision":
        own = (("fc.",) if module.fc is not None else ()) + (
            ("conv1.weight",) if module.conv1.in_channels != 3 else ()
        )
        drop = module.head_prefixes() + ("fc.",)
        return drop + (("conv1.weight",) if "conv1.weight" in own else ()), own
    raise ValueError(f"unknown pretrained layout {layout!r}; choose one of {sorted(SOURCES)}")


def absent_message(path: str | Path, layout: str, target: str) -> str:
    """One line: which file is missing, what it is, where to get it, what happens instead."""
    src = SOURCES[layout]
    return f"pretrained weights for {target}: {path} not found ({src.what}; get it from {src.where}); random start"


def load_pretrained(
    module: nn.Module, path: str | Path, layout: str = "auto", strict: bool = False, target: str = "backbone"
) -> list[str] | None:
    """Load the published file at `path` into `module` (an HRNet or a ResNet-18) after dropping the keys its
    layout has and the module does not build. `layout`: a SOURCES name, or "auto" (the file tells HRNet's;
    ResNet has one). Returns the dropped keys, or None when the file is absent and not `strict`."""
    kind = "hrnet" if isinstance(module, HRNet) else "resnet" if isinstance(module, ResNet) else None
    if kind is None:
        raise TypeError(f"pretrained {target}: {type(module).__name__} is neither an HRNet nor a ResNet")
    if not Path(path).is_file():
        message = absent_message(path, layout if layout != "auto" else DEFAULT_LAYOUT[kind], target)
        if strict:
            raise PretrainedMissing(message)
        log.warning(message)
        return None
    state = read_state_dict(path)
    if layout == "auto":
        layout = hrnet_layout(state, str(path)) if kind == "hrnet" else "resnet_torchvision"
    if not layout.startswith(kind):
        raise ValueError(f"pretrained {target}: layout {layout!r} is not a {kind} layout ({path})")
    drop, keep_own = dropped_prefixes(module, layout)
    own = module.state_dict()
    for key in own:  # files from before PyTorch 0.4.1: BatchNorm counters start at 0
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(own[key])
    dropped = load_backbone_weights(module, state, drop, source=str(path), keep_own=keep_own)
    log.info("pretrained %s: loaded %s (%s), %d keys dropped", target, path, layout, len(dropped))
    return dropped
