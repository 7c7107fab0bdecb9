"""What a checkpoint was trained on, as plain data: the `provenance` entry of every training checkpoint.

Keys (all plain dicts, lists, str, int, float, bool or None, so that a weights-only reader accepts them):

- ``datasets``: one record per training shard folder: ``path``, mixing ``weight``, ``dataset`` and ``split``
  (from the folder's index.json, else from the ``.../NAME/SPLIT`` path), ``samples`` (index.json; None when
  it could not be read) and ``synthetic`` (the dataset is one of SYNTHETIC_DATASETS: rendered, no photo).
- ``steps``: optimiser steps done when the checkpoint was written; ``planned_steps``: the run's ``run.steps``.
- ``body_model``: the body model the network was trained with (built-in name or SMPL path).
- ``config``: a summary of the training recipe (network preset, ablation, input side, batch, learning rate
  and schedule, IUV-only steps, seed, augmentation).
- ``init``: None, or the weights the run started from (``model.init``): ``checkpoint``, ``modules``,
  ``freeze`` and ``trained_on``, that file's own provenance (datasets and steps; None when it records none).
- ``real_images_seen``: True when a dataset above, or one the init weights were trained on, is not
  synthetic; False when every one of them is synthetic; None when the init weights' origin is unknown.
- ``recorded``: False when this was reconstructed from an older checkpoint's config (no ``provenance``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SYNTHETIC_DATASETS = frozenset({"synth"})  # rendered by stages.synthesize: no photograph in it


def source_record(path: str, weight: float = 1.0) -> dict[str, Any]:
    """The record of one training shard folder ``.../NAME/SPLIT`` (see the module docstring)."""
    folder = Path(path)
    dataset, split, samples = folder.parent.name, folder.name, None
    try:
        index = json.loads((folder / "index.json").read_text())
        dataset = str(index["params"].get("dataset", dataset))
        split = str(index["params"].get("split", split))
        samples = int(index["samples"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # the folder is not here (another machine): the path says what it was
    return {
        "path": str(path),
        "weight": float(weight),
        "dataset": dataset,
        "split": split,
        "samples": samples,
        "synthetic": dataset in SYNTHETIC_DATASETS,
    }


@functools.lru_cache(maxsize=8)
def _init_trained_on(path: str, mtime: float) -> dict[str, Any] | None:
    """Datasets and steps of a weights file, from its provenance or its training config; None if neither."""
    from model.training.checkpoint import read_torch_file

    try:
        payload = read_torch_file(path)
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(payload, dict):
        return None
    prov = payload_provenance(payload)
    if prov is None:
        return None
    return {k: prov[k] for k in ("datasets", "steps", "real_images_seen")}


def init_record(init: dict[str, Any]) -> dict[str, Any] | None:
    """The ``init`` entry for a config's ``model.init`` section (None when the run starts from scratch)."""
    checkpoint = init.get("checkpoint")
    if not checkpoint:
        return None
    path = Path(checkpoint)
    trained_on = _init_trained_on(str(path), path.stat().st_mtime) if path.is_file() else None
    return {
        "checkpoint": str(checkpoint),
        "modules": list(init.get("modules", [])),
        "freeze": bool(init.get("freeze", False)),
        "trained_on": trained_on,
    }


def training_provenance(config: dict[str, Any], body_model: str, step: int) -> dict[str, Any]:
    """The provenance of a run at `step`, from its training config as plain data (config_as_dict)."""
    model, data = config.get("model", {}), config.get("data", {})
    optim, run = config.get("optim", {}), config.get("run", {})
    datasets = [
        source_record(s["path"], s.get("weight", 1.0)) if isinstance(s, dict) else source_record(str(s))
        for s in data.get("train", [])
    ]
    init = init_record(model.get("init") or {})
    seen: bool | None = any(not d["synthetic"] for d in datasets)
    if init is not None and not seen:
        inherited = (init["trained_on"] or {}).get("real_images_seen")
        seen = inherited if init["trained_on"] is not None else None
    return {
        "datasets": datasets,
        "steps": int(step),
        "planned_steps": int(run.get("steps", step)),
        "body_model": str(body_model),
        "config": {
            "preset": model.get("preset"),
            "ablation": model.get("ablation"),
            "image_size": config.get("resolved_model", {}).get("image_size"),
            "batch_size": data.get("batch_size"),
            "lr": optim.get("lr"),
            "lr_schedule": optim.get("lr_schedule"),
            "iuv_only_steps": optim.get("iuv_only_steps"),
            "seed": run.get("seed"),
            "augment": data.get("augment"),
        },
        "init": init,
        "real_images_seen": seen,
        "recorded": True,
    }


def payload_provenance(payload: dict[str, Any]) -> dict[str, Any] | None:
    """A checkpoint payload's provenance; for an older checkpoint without one, reconstructed from its
    training config and step (``recorded: False``); None when it has no config either."""
    if isinstance(payload.get("provenance"), dict):
        return payload["provenance"]
    if not isinstance(payload.get("config"), dict):
        return None
    prov = training_provenance(
        payload["config"], payload.get("body_model", "anny-smpl24"), payload.get("step", 0)
    )
    prov["recorded"] = False
    return prov


def describe(prov: dict[str, Any] | None) -> str:
    """One line: what the checkpoint was trained on (for predict's and evaluate's output)."""
    if prov is None:
        return "training data not recorded in this checkpoint"
    sets = ", ".join(
        f"{d['dataset']}/{d['split']}" + (" (synthetic)" if d["synthetic"] else "") for d in prov["datasets"]
    )
    cfg = prov.get("config", {})
    text = f"trained on {sets or 'no recorded dataset'} for {prov['steps']} steps"
    text += f" ({cfg.get('preset')} network, {cfg.get('image_size')} px input, body {prov['body_model']})"
    init = prov.get("init")
    if init:
        origin = init["trained_on"]
        where = (
            ", ".join(f"{d['dataset']}/{d['split']}" for d in origin["datasets"])
            + f", {origin['steps']} steps"
            if origin
            else "origin not recorded"
        )
        text += f"; {'+'.join(init['modules'])} from {init['checkpoint']} ({where})"
    if not prov.get("recorded", True):
        text += " [reconstructed from the checkpoint's config]"
    return text


def synthetic_only_warning(prov: dict[str, Any] | None) -> str | None:
    """The warning for a checkpoint that has never seen a photograph (None otherwise)."""
    if prov is None or prov.get("real_images_seen") is not False:
        return None
    return (
        "this checkpoint has only seen synthetic renders of one body model, never a photograph: on real "
        "photos its meshes are not to be trusted (train on real datasets for that; see README)"
    )


def checkpoint_provenance(path: str | Path) -> dict[str, Any] | None:
    """The provenance of the checkpoint file at `path` (None when it records none and has no config)."""
    from model.training.checkpoint import read_torch_file

    payload = read_torch_file(path)
    return payload_provenance(payload) if isinstance(payload, dict) else None
