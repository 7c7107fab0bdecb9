"""Starting a run from another run's weights, module by module, and keeping those modules fixed.

The paper's IUV estimator starts from an HRNet pretrained for DensePose, and the rest of DaNet is trained on
top of it. `model.init` in the training config does the same here: it copies the weights of named top-level
modules of DaNet (`iuv`, `partial_heads`, `global_stream`, ...) out of a checkpoint written by
`stages.train` (or a bare state dict) and, with `freeze`, keeps them fixed: no gradient, no optimiser state
and BatchNorm statistics as loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from model.backbones import HRNet, ResNet
from model.backbones.pretrained import load_pretrained
from model.training.checkpoint import load_checkpoint, read_torch_file, save_checkpoint

log = logging.getLogger(__name__)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The network weights in `path`: a training checkpoint's `model` entry, or the file itself when it is a
    bare state dict. A missing or unreadable file is an error naming it."""
    payload = read_torch_file(path)
    state = payload.get("model", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"model.init.checkpoint: {path} holds neither a checkpoint nor a state dict")
    return state


def module_state(state: dict[str, torch.Tensor], name: str, source: str | Path) -> dict[str, torch.Tensor]:
    """The entries of `state` under top-level module `name`, keys relative to it; an error naming `source`
    when there are none."""
    prefix = f"{name}."
    own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not own:
        raise KeyError(
            f"model.init: {source} has no weights for module {name!r} (no key starts with {prefix!r})"
        )
    return own


def module_of(network: nn.Module, name: str) -> nn.Module:
    """The top-level submodule `name` of `network`, or an error listing the ones there are."""
    children = dict(network.named_children())
    if name not in children:
        raise KeyError(f"model.init.modules: the network has no module {name!r}; it has {sorted(children)}")
    return children[name]


def load_module_weights(network: nn.Module, path: str | Path, modules: list[str]) -> None:
    """Copies the weights of each module in `modules` from the file at `path` into `network`, strictly: every
    parameter and buffer of the module must be in the file with the same shape."""
    state = read_state_dict(path)
    for name in modules:
        module = module_of(network, name)
        own = module_state(state, name, path)
        prefix = f"{name}."
        expected = module.state_dict()
        missing = sorted(set(expected) - set(own))
        if missing:
            raise KeyError(
                f"model.init: {path} lacks {len(missing)} weight(s) of {name!r}, e.g. {prefix}{missing[0]}"
            )
        for key, value in own.items():
            if key in expected and value.shape != expected[key].shape:
                raise ValueError(
                    f"model.init: {path}: {prefix}{key} has shape {tuple(value.shape)}, the network wants "
                    f"{tuple(expected[key].shape)} (was it trained with another model config?)"
                )
        module.load_state_dict(own, strict=True)


def load_pretrained_backbones(network: nn.Module, cfg) -> dict[str, list[str] | None]:
    """Loads `cfg.hrnet` (a PretrainedConfig) into every HRNet of `network` and `cfg.resnet18` into every
    ResNet-18. A file that is not there: one warning line, those modules keep their random initialisation
    (an error with cfg.strict). Returns {module path: keys of the file it dropped}."""
    wanted = []
    if cfg.hrnet:
        wanted.append((cfg.hrnet, cfg.hrnet_layout, (HRNet,), "HRNet"))
    if cfg.resnet18:
        wanted.append((cfg.resnet18, "resnet_torchvision", (ResNet,), "ResNet-18"))
    loaded: dict[str, list[str] | None] = {}
    for path, layout, kinds, kind in wanted:
        targets = [
            (name, m)
            for name, m in network.named_modules()
            if isinstance(m, kinds) and getattr(m, "depth", 18) == 18
        ]
        if not targets:
            log.warning("model.init.pretrained: %s unused, the network has no %s backbone", path, kind)
            continue
        names = ", ".join(name for name, _ in targets)
        if not Path(path).is_file():  # one line for all the modules it would have started
            load_pretrained(targets[0][1], path, layout, cfg.strict, target=names)
            continue
        for name, module in targets:
            loaded[name] = load_pretrained(module, path, layout, strict=True, target=name)
    return loaded


def freeze_modules(network: nn.Module, modules: list[str]) -> None:
    """Stops gradients into the parameters of `modules` (call before the optimiser is built) and puts them in
    eval mode; `keep_frozen_in_eval` must follow every `network.train()`."""
    for name in modules:
        module_of(network, name).requires_grad_(False).eval()


def keep_frozen_in_eval(network: nn.Module, modules: list[str]) -> None:
    """After `network.train()`: frozen modules stay in eval mode, so BatchNorm uses and keeps the loaded
    statistics and dropout stays off."""
    for name in modules:
        module_of(network, name).eval()


def export_modules(checkpoint: str | Path, modules: list[str], out: str | Path) -> dict[str, int]:
    """Writes the weights of `modules` from a training checkpoint to `out` (atomically) with the checkpoint's
    config and step, dropping the optimiser state and the other modules: a small file for `model.init`.
    Returns the number of tensors kept per module."""
    payload = load_checkpoint(checkpoint)
    kept: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for name in modules:
        own = module_state(payload["model"], name, checkpoint)
        kept.update({f"{name}.{k}": v for k, v in own.items()})
        counts[name] = len(own)
    save_checkpoint(
        out,
        {"model": kept, "config": payload["config"], "step": payload["step"], "modules": list(modules)},
    )
    return counts
