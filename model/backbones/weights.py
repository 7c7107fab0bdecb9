"""Loading pretrained backbone weights saved by torchvision or timm.

torchvision and timm cannot be installed next to the CPU torch wheel used here, so the backbones are written
in this package with the same parameter names; a weight file saved by either library loads with strict key
matching. Keys of heads this project does not build (a classifier, HRNet's multi-scale classification neck)
are declared by the backbone and reported, never silently dropped.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterable

import torch
from torch import nn

log = logging.getLogger(__name__)


class WeightKeyError(KeyError):
    """A weight file's keys do not match the backbone's."""


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from `path`, unwrapping the usual {"state_dict": ...} / {"model": ...} containers."""
    try:  # weights_only: a file from outside is data; anything but tensors and containers is refused
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise WeightKeyError(f"{path}: not a weights-only torch file ({type(err).__name__}: {err})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightKeyError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_backbone_weights(
    module: nn.Module,
    state: dict[str, torch.Tensor] | str | os.PathLike[str],
    ignore_prefixes: Iterable[str] = (),
    source: str = "state dict",
    keep_own: Iterable[str] = (),
) -> list[str]:
    """Strictly load `state` into `module`; returns the keys skipped as starting with `ignore_prefixes`.
    The module's own keys starting with `keep_own` are not read from the file and keep their values.

    Raises WeightKeyError listing every missing and unexpected key, and every shape mismatch.
    """
    if not isinstance(state, dict):
        source = str(state)
        state = read_state_dict(state)
    prefixes, fresh = tuple(ignore_prefixes), tuple(keep_own)
    skipped = sorted(k for k in state if prefixes and k.startswith(prefixes))
    kept = {k: v for k, v in state.items() if not (prefixes and k.startswith(prefixes))}
    own = module.state_dict()
    if fresh:
        kept.update({k: v for k, v in own.items() if k.startswith(fresh)})
    missing = sorted(set(own) - set(kept))
    unexpected = sorted(set(kept) - set(own))
    shapes = sorted(
        f"{k}: file {tuple(kept[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(kept)
        if kept[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        lines = [f"{source}: weights do not match {type(module).__name__}"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items))
        raise WeightKeyError("\n".join(lines))
    module.load_state_dict(kept, strict=True)
    if skipped:
        log.info("%s: skipped %d head keys not built here (%s ...)", source, len(skipped), skipped[0])
    return skipped
