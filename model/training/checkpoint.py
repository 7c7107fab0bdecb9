"""Checkpoints: plain data only, written atomically, verified on load, complete enough to resume exactly.

A checkpoint is one torch file holding: `model` (state dict), `optimizer`, `scheduler`, `step`, `rng`
(python, numpy, torch CPU and CUDA states, as tensors and numbers), `config` (the training config as plain
data, including the resolved network config), `body_model` (which body model the network was trained
with) and `integrity`: the sha256 of everything else (`payload_digest`).

Checkpoints come from strangers too, so a file is data, never code: it is read with
`torch.load(weights_only=True)`, which admits tensors and plain containers and refuses anything that would
import or call code (`UnsafeCheckpointError`). A file written by an older version of this project (numpy
RNG state as an array) is refused the same way; `convert_trusted` (`python -m stages.export_weights
--convert-trusted OLD NEW`) reads one with full unpickling on explicit request and writes the plain form.
A file whose digest does not match is damaged (`CorruptCheckpointError`); one without `integrity` is
accepted as a legacy file (e.g. a bare state dict) because it loaded with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.config import config_from_dict
from model.danet import DaNet
from pipeline.files import atomic_output

log = logging.getLogger(__name__)

INTEGRITY_KEY = "integrity"
DIGEST_SCHEME = "sha256-v1"  # payload_digest's traversal; bump when it changes
PLAIN_SCALARS = (bool, int, float, str, bytes, type(None))


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and says why."""


class UnsafeCheckpointError(CheckpointError):
    """The file holds objects other than tensors and plain data: reading it would run code from it."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated, damaged, or its tensors do not match the digest written with them."""


# -- RNG states as plain data -----------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Every RNG the run draws from, as tensors and numbers (loadable with weights_only=True)."""
    # the global numpy state is saved because libraries (not this project) may draw from it
    name, key, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state = {
        "python": random.getstate(),  # (version, tuple of ints, None): plain data
        "numpy": {
            "name": str(name),
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state(saved: Any) -> tuple:
    """np.random.set_state's tuple from `rng_state`'s dict (or an old file's tuple, array or tensor key)."""
    if isinstance(saved, dict):
        saved = (saved["name"], saved["key"], saved["pos"], saved["has_gauss"], saved["cached_gaussian"])
    name, key, *rest = saved
    key = key.cpu().numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
    return (name, key.astype(np.uint32), *rest)


def set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    np.random.set_state(_numpy_state(state["numpy"]))  # noqa: NPY002
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# -- plain data and its digest ----------------------------------------------------------------------------


def check_plain(node: Any, where: str = "checkpoint") -> None:
    """Raises TypeError naming the entry when `node` holds anything but tensors, plain scalars and
    dict / list / tuple containers of them (what `torch.load(weights_only=True)` reads back)."""
    if isinstance(node, torch.Tensor) or isinstance(node, PLAIN_SCALARS):
        return
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, PLAIN_SCALARS):
                raise TypeError(f"{where}: key {key!r} is a {type(key).__name__}, not plain data")
            check_plain(value, f"{where}[{key!r}]")
        return
    if isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_plain(value, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(node).__module__}.{type(node).__name__}, not a tensor or plain data")


def payload_digest(payload: dict[str, Any]) -> str:
    """sha256 over every entry but `integrity`: tensors by path, dtype, shape and bytes; plain values by
    path, type and repr. Containers are walked in sorted key order, so the digest does not depend on how
    the file was written."""
    digest = hashlib.sha256()

    def walk(node: Any, path: str) -> None:
        if isinstance(node, torch.Tensor):
            tensor = node.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{path}|tensor|{node.dtype}|{tuple(node.shape)}\n".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
        elif isinstance(node, dict):
            digest.update(f"{path}|dict|{len(node)}\n".encode())
            for key in sorted(node, key=repr):
                walk(node[key], f"{path}/{key!r}")
        elif isinstance(node, (list, tuple)):
            digest.update(f"{path}|{type(node).__name__}|{len(node)}\n".encode())
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")
        else:
            digest.update(f"{path}|{type(node).__name__}|{node!r}\n".encode())

    walk({k: v for k, v in payload.items() if k != INTEGRITY_KEY}, "")
    return digest.hexdigest()


def verify_payload(path: str | Path, payload: Any) -> None:
    """Checks `payload`'s digest; a mismatch is a CorruptCheckpointError naming `path`. A payload without
    one (a bare state dict, an older file) is accepted: it read back with weights_only=True."""
    if not isinstance(payload, dict) or INTEGRITY_KEY not in payload:
        log.debug("%s: no integrity digest (legacy file); accepted as plain data", path)
        return
    record = payload[INTEGRITY_KEY]
    if not isinstance(record, dict) or record.get("scheme") != DIGEST_SCHEME:
        raise CorruptCheckpointError(f"{path}: unknown integrity record {record!r}")
    if payload_digest(payload) != record.get("sha256"):
        raise CorruptCheckpointError(
            f"{path}: damaged checkpoint: its tensors do not match the sha256 written with them "
            "(a flipped bit on disk or in transfer); use an earlier copy"
        )


# -- files ------------------------------------------------------------------------------------------------


def previous_path(path: str | Path) -> Path:
    """Where `save_checkpoint(..., keep_previous=True)` keeps the checkpoint it replaces."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def temp_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


def save_checkpoint(path: str | Path, payload: dict[str, Any], keep_previous: bool = False) -> Path:
    """Writes `payload` (plain data only, checked) with its digest to `path` via a temporary file and an
    atomic rename: a crash never leaves half a file. With `keep_previous` the file it replaces is kept
    as `previous_path(path)`, the fallback of a resume when `path` turns out damaged."""
    path = Path(path)
    check_plain(payload, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in payload.items() if k != INTEGRITY_KEY}
    body[INTEGRITY_KEY] = {"scheme": DIGEST_SCHEME, "sha256": payload_digest(body)}
    with atomic_output(path) as tmp:
        torch.save(body, tmp)
        if keep_previous and path.is_file():
            os.replace(path, previous_path(path))
    return path


def _refusal_reason(err: Exception) -> str:
    """The line of torch's weights-only error that names what the file wanted to load."""
    for line in str(err).splitlines():
        line = line.strip()
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
    return str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__


def _wants_code(reason: str) -> bool:
    """Whether torch's weights-only refusal is about importing or calling something (a payload, or an old
    file's numpy objects), not about bytes that are no pickle at all (garbage, a damaged file)."""
    return any(word in reason.lower() for word in ("global", "reduce", "class", "build", "setstate"))


def convert_hint(path: str | Path) -> str:
    return (
        f"only if you trust where {path} came from, convert it once: "
        f"python -m stages.export_weights --convert-trusted {path} NEW.pt"
    )


def read_torch_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(weights_only=True)` of `path`, digest verified. A missing file is FileNotFoundError; one
    that would need code to load is UnsafeCheckpointError; a truncated or damaged one CorruptCheckpointError;
    every message names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err) and _wants_code(_refusal_reason(err)):
            raise UnsafeCheckpointError(
                f"{path}: refused: it holds more than tensors and plain data ({_refusal_reason(err)}), "
                f"and loading it would run code from the file; {convert_hint(path)}"
            ) from None
        raise CorruptCheckpointError(
            f"{path}: not a readable checkpoint (damaged or truncated: {_refusal_reason(err)})"
        ) from err
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged file
        reason = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else type(err).__name__
        raise CorruptCheckpointError(
            f"{path}: not a readable checkpoint (damaged or truncated: {reason})"
        ) from err
    verify_payload(path, payload)
    return payload


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Reads a checkpoint; a missing, unsafe, damaged file, or one lacking an entry, is an error naming it."""
    payload = read_torch_file(path, map_location)
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a checkpoint (a {type(payload).__name__}, not a mapping)")
    for key in ("model", "config", "step"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    return payload


def to_plain(node: Any) -> Any:
    """An old checkpoint's objects as plain data: numpy arrays -> tensors, numpy scalars -> numbers,
    dataclasses -> dicts; anything else that is not plain is a TypeError (nothing is silently dropped)."""
    import dataclasses

    if isinstance(node, torch.Tensor) or isinstance(node, PLAIN_SCALARS):
        return node
    if isinstance(node, np.ndarray):
        return torch.from_numpy(node.astype(np.int64) if node.dtype == np.uint32 else node.copy())
    if isinstance(node, np.generic):
        return node.item()
    if isinstance(node, dict):
        return {to_plain(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(to_plain(v) for v in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return to_plain(dataclasses.asdict(node))
    raise TypeError(f"cannot convert a {type(node).__module__}.{type(node).__name__} to plain data")


def convert_trusted(old: str | Path, new: str | Path) -> Path:
    """Reads `old` WITH FULL UNPICKLING (it may run code: only for files you trust), converts its content
    to plain data and writes it with a digest to `new`, which then loads everywhere with weights_only=True."""
    old, new = Path(old), Path(new)
    if not old.is_file():
        raise FileNotFoundError(f"checkpoint not found: {old}")
    if old.resolve() == new.resolve():
        raise ValueError(f"{new}: write the converted file next to the old one, not over it")
    payload = torch.load(old, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict):
        raise CheckpointError(f"{old}: not a checkpoint (a {type(payload).__name__}, not a mapping)")
    payload = to_plain(payload)
    if isinstance(payload.get("rng"), dict) and isinstance(payload["rng"].get("numpy"), tuple):
        name, key, pos, has_gauss, cached = payload["rng"]["numpy"]
        payload["rng"]["numpy"] = {
            "name": name, "key": key, "pos": pos, "has_gauss": has_gauss, "cached_gaussian": cached,
        }  # fmt: skip
    payload.pop(INTEGRITY_KEY, None)
    return save_checkpoint(new, payload)


def model_from_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", body=None
) -> tuple[DaNet, dict]:
    """The trained network in eval mode (with its body model attached) and the checkpoint's training config.

    `body` overrides the body model recorded in the checkpoint (e.g. a real SMPL folder). The checkpoint is
    self-contained: the mean parameters come from its state dict (buffers), not from the training config's
    `mean_params` file, which need not exist where the model is used.
    """
    payload = load_checkpoint(path)
    config = payload["config"]
    network = DaNet(config_from_dict({**config["resolved_model"], "mean_params": None}))
    network.load_state_dict(payload["model"])
    if body is None:
        from pipeline.body import load_body_model

        body = load_body_model(payload.get("body_model", "anny-smpl24"))
    network.attach_body_model(body)
    return network.to(device).eval(), config
