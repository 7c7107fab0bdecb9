"""Training configuration as data: a YAML file plus `key=value` overrides from the command line.

model:     preset (paper | tiny), optional ablation switch, overrides of DaNetConfig fields, and `init`:
           modules to start from (and optionally freeze at) another run's weights (model.training.init)
data:      training shard folders with mixing weights, batch size, workers, augmentation on/off
optim:     Adam learning rate, the paper's schedule (IUV estimator alone first, LR steps), gradient clip
run:       steps, checkpoint/log intervals, seed, device, mixed precision, non-finite loss tolerance
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from model.config import ABLATIONS, DaNetConfig, config_from_dict, config_to_dict, parse_number


@dataclass
class SourceConfig:
    """One shard folder (SHARD_DIR/NAME/SPLIT with index.json) and its share of each batch."""

    path: str
    weight: float = 1.0


@dataclass
class DataConfig:
    train: list[SourceConfig] = field(default_factory=lambda: [SourceConfig("data/shards/synth/train")])
    val: str | None = "data/shards/synth/val"
    batch_size: int = 16
    num_workers: int = 0
    shuffle_buffer: int = 500
    augment: bool = True
    # where the image / IUV warps, colour jitter and one-hot run: "cpu" (the DataLoader workers, the
    # default) or "device" (the training device, pipeline.augment_torch; same draws, see docs/scale.md)
    augment_on: Literal["cpu", "device"] = "cpu"


@dataclass
class OptimConfig:
    lr: float = 1e-4
    iuv_only_steps: int = 5000  # the IUV estimator trains alone first (paper: 5k steps)
    lr_schedule: Literal["step", "cosine"] = "step"  # see model.training.schedule
    lr_milestones: list[int] = field(default_factory=lambda: [30000, 60000])  # "step" only
    lr_gamma: float = 0.1  # "step" only
    lr_final_factor: float = 0.01  # "cosine" only: the last step's rate, as a fraction of lr
    weight_decay: float = 0.0
    grad_clip: float | None = None


@dataclass
class RunConfig:
    steps: int = 90000
    checkpoint_every: int = 1000
    log_every: int = 50
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    threads: int | None = None  # torch CPU threads (None: torch's default)
    max_nonfinite: int = 20  # consecutive NaN/inf losses before the run stops
    keep_previous: bool = True  # keep the replaced last.pt as last.prev.pt: --resume's fallback
    val_samples: int = 0  # val samples scored at each checkpoint (training/validation.py); 0: off


@dataclass
class PretrainedConfig:
    """Published backbone weights to start from (model.backbones.pretrained), loaded before `checkpoint`.
    A file that is not there is reported in one line (which file, where to get it) and skipped."""

    hrnet: str | None = None  # HRNet-W48 for the IUV estimator: official pose_hrnet or timm layout
    hrnet_layout: Literal["auto", "hrnet_official", "hrnet_timm"] = "auto"  # auto: read off the file's keys
    resnet18: str | None = None  # torchvision ResNet-18 for every ResNet-18 of the streams
    strict: bool = False  # a missing file is an error instead


@dataclass
class InitConfig:
    """Start named top-level modules of DaNet from a checkpoint (the paper's IUV estimator starts pretrained)."""

    checkpoint: str | None = None  # a stages.train checkpoint (model.pt / last.pt) or a bare state dict
    modules: list[str] = field(default_factory=lambda: ["iuv", "partial_heads"])
    freeze: bool = False  # keep those modules fixed: no gradient, BatchNorm statistics as loaded
    pretrained: PretrainedConfig = field(default_factory=PretrainedConfig)


@dataclass
class ModelSection:
    preset: str = "paper"
    ablation: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    init: InitConfig = field(default_factory=InitConfig)

    @property
    def frozen_modules(self) -> list[str]:
        return list(self.init.modules) if self.init.checkpoint and self.init.freeze else []


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def danet_config(self) -> DaNetConfig:
        """The network's config: preset, then the ablation switch, then explicit overrides."""
        data: dict[str, Any] = {}
        if self.model.ablation:
            if self.model.ablation not in ABLATIONS:
                raise KeyError(f"unknown ablation {self.model.ablation!r}; choose one of {sorted(ABLATIONS)}")
            data = _deep_merge(data, ABLATIONS[self.model.ablation])
        data = _deep_merge(data, self.model.overrides)
        return config_from_dict(data, base=self.model.preset)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Converts a YAML value to the field type: '3e-4' -> 3e-4 for floats (YAML reads it as text), etc."""
    args = typing.get_args(tp)
    if type(None) in args:
        if value is None:
            return None
        tp = next(a for a in args if a is not type(None))
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ValueError(f"{where}: expected one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return [_coerce(typing.get_args(tp)[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp in (int, float):
        return parse_number(tp, value, where)
    if tp is str and not isinstance(value, str):
        return str(value)
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    """Builds dataclass `cls` from plain data, rejecting unknown keys with the offending path."""
    if not dataclasses.is_dataclass(cls):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        origin = typing.get_origin(tp)
        if origin is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            item = typing.get_args(tp)[0]
            value = [
                _build(item, v if not isinstance(v, str) else {"path": v}, f"{where}.{name}[{i}]")
                for i, v in enumerate(value)
            ]
        elif dataclasses.is_dataclass(tp):
            value = _build(tp, value, f"{where}.{name}")
        else:
            value = _coerce(tp, value, f"{where}.{name}")
        kwargs[name] = value
    return cls(**kwargs)


def _parse_value(text: str) -> Any:
    """`key=value` values are YAML scalars/lists: 1e-4, true, [1, 2], null, strings."""
    return yaml.safe_load(text)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Applies dotted `a.b.c=value` overrides to nested plain data (model.overrides.* reaches DaNetConfig)."""
    out = _deep_merge({}, data)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = _parse_value(text)
    return out


def validate_knobs(config: TrainConfig, where: str) -> None:
    """One-line errors, before anything runs, for knobs out of range (zero steps, batch size, ...)."""
    positive = {
        "run.steps": config.run.steps,
        "run.checkpoint_every": config.run.checkpoint_every,
        "run.log_every": config.run.log_every,
        "data.batch_size": config.data.batch_size,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ValueError(f"{where}: {key} must be a positive whole number, got {value}")
    for key, value in {
        "data.num_workers": config.data.num_workers,
        "data.shuffle_buffer": config.data.shuffle_buffer,
        "run.max_nonfinite": config.run.max_nonfinite,
        "optim.iuv_only_steps": config.optim.iuv_only_steps,
    }.items():
        if value < 0:
            raise ValueError(f"{where}: {key} must not be negative, got {value}")
    if not config.optim.lr > 0:
        raise ValueError(f"{where}: optim.lr must be positive, got {config.optim.lr}")
    if not config.data.train:
        raise ValueError(f"{where}: data.train lists no shard folder")
    for i, source in enumerate(config.data.train):
        if not source.weight > 0:
            raise ValueError(f"{where}: data.train[{i}].weight must be positive, got {source.weight}")


def check_files(config: TrainConfig, where: str = "config") -> None:
    """FileNotFoundError naming the knob for a file the config names that does not exist (call before a
    run; loading a config for inspection does not need the files)."""
    mean_params = config.danet_config().mean_params
    if mean_params and not Path(mean_params).is_file():
        raise FileNotFoundError(
            f"{where}: model.overrides.mean_params names {mean_params}, which does not exist "
            "(stages.synthesize writes it for the synthetic set)"
        )
    init = config.model.init.checkpoint
    if init and not Path(init).is_file():
        raise FileNotFoundError(f"{where}: model.init.checkpoint names {init}, which does not exist")


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Reads a training YAML (or the defaults when `path` is None) and applies overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
    data = apply_overrides(data, overrides or [])
    config = _build(TrainConfig, data, str(path or "config"))
    validate_knobs(config, str(path or "config"))
    config.danet_config()  # fail early on a bad model section
    if "iuv" in config.model.frozen_modules and config.optim.iuv_only_steps > 0:
        raise ValueError(
            f"{path or 'config'}: model.init freezes the IUV estimator, so the IUV-only phase would train "
            f"nothing: set optim.iuv_only_steps=0 (it is {config.optim.iuv_only_steps})"
        )
    return config


def config_as_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain data (for checkpoints and logs), including the resolved network config."""
    out = dataclasses.asdict(config)
    out["resolved_model"] = config_to_dict(config.danet_config())
    return out
