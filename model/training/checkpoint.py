"""Checkpoints: written atomically, complete enough to resume exactly, and loadable for inference alone.

A checkpoint is one torch file holding: `model` (state dict), `optimizer`, `scheduler`, `step`, `rng`
(python, numpy, torch CPU and CUDA states), `config` (the training config as plain data, including the
resolved network config) and `body_model` (which body model the network was trained with).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.config import config_from_dict
from model.danet import DaNet


def rng_state() -> dict[str, Any]:
    # the global numpy state is saved because libraries (not this project) may draw from it
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}  # noqa: NPY002
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Writes `payload` to `path` via a temporary file and an atomic rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_torch_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """torch.load of `path`; a missing or unreadable file is a clear error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged file
        raise ValueError(f"{path}: not a readable checkpoint ({err})") from err


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Reads a checkpoint; a missing or unreadable file, or one lacking an entry, is a clear error naming it."""
    payload = read_torch_file(path, map_location)
    for key in ("model", "config", "step"):
        if key not in payload:
            raise ValueError(f"{path}: checkpoint lacks '{key}'")
    return payload


def model_from_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", body=None
) -> tuple[DaNet, dict]:
    """The trained network in eval mode (with its body model attached) and the checkpoint's training config.

    `body` overrides the body model recorded in the checkpoint (e.g. a real SMPL folder).
    """
    payload = load_checkpoint(path)
    config = payload["config"]
    network = DaNet(config_from_dict(config["resolved_model"]))
    network.load_state_dict(payload["model"])
    if body is None:
        from pipeline.body import load_body_model

        body = load_body_model(payload.get("body_model", "anny-smpl24"))
    network.attach_body_model(body)
    return network.to(device).eval(), config
