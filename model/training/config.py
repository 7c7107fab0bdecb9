"""Training configuration as data: a YAML file plus `key=value` overrides from the command line.

model:     preset (paper | tiny), optional ablation switch, overrides of DaNetConfig fields, and `init`:
           modules to start from (and optionally freeze at) another run's weights (model.training.init)
data:      training shard folders with mixing weights, batch size, workers, augmentation on/off
optim:     Adam learning rate, the paper's schedule (IUV estimator alone first, LR steps), gradient clip
run:       steps, checkpoint/log intervals, seed, device, mixed precision, non-finite loss tolerance

Files and overrides are read by the same rule as the network's config (model/config_schema.py: YAML 1.2
numbers, strict booleans, unknown keys rejected); every bad key or value is a ConfigError naming the file or
the override and the dotted key, e.g. `configs/train/demo.yaml: model.overrides.roi.size: expected a whole
number, got 2.5`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from model.config import DaNetConfig, config_to_dict, resolve_config
from model.config_schema import ConfigError, build, load_yaml, parse_yaml_value, set_dotted


@dataclass
class SourceConfig:
    """One shard folder (SHARD_DIR/NAME/SPLIT with index.json) and its share of each batch. In a config a
    bare string stands for {path: string}."""

    SHORTHAND: ClassVar[str] = "path"

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
        return resolve_config(
            self.model.preset,
            self.model.ablation,
            self.model.overrides,
            preset_key="model.preset",
            ablation_key="model.ablation",
            overrides_key="model.overrides",
        )


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Applies dotted `a.b.c=value` overrides (values in YAML 1.2) to a copy of nested plain data;
    model.overrides.* reaches DaNetConfig. ConfigError naming the override for a malformed one."""
    out = _copy(data)
    for item in overrides:
        where = f"override {item!r}"
        if "=" not in item:
            raise ConfigError("", "not of the form key=value", where)
        key, text = item.split("=", 1)
        try:
            set_dotted(out, key.strip(), parse_yaml_value(text))
        except ConfigError as err:
            raise err.at(where) from None
    return out


def _copy(data: Any) -> Any:
    """Copy of the nested dicts (the overrides write into them; lists and scalars are replaced, not edited)."""
    return {k: _copy(v) for k, v in data.items()} if isinstance(data, dict) else data


def _origin(key: str, overrides: list[str], path: Path | None) -> str | None:
    """What set the config key `key`: the last override on it (or on a section above or below it), else
    the file."""
    for item in reversed(overrides):
        target = item.split("=", 1)[0].strip()
        if key == target or key.startswith((target + ".", target + "[")) or target.startswith(key + "."):
            return f"override {item!r}"
    return str(path) if path is not None else None


def validate_knobs(config: TrainConfig, where: str | None = None) -> None:
    """ConfigError (one line, naming `where` and the key), before anything runs, for knobs out of range
    (zero steps, batch size, ...)."""
    positive = {
        "run.steps": config.run.steps,
        "run.checkpoint_every": config.run.checkpoint_every,
        "run.log_every": config.run.log_every,
        "data.batch_size": config.data.batch_size,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(key, f"must be a positive whole number, got {value}", where)
    for key, value in {
        "data.num_workers": config.data.num_workers,
        "data.shuffle_buffer": config.data.shuffle_buffer,
        "run.max_nonfinite": config.run.max_nonfinite,
        "optim.iuv_only_steps": config.optim.iuv_only_steps,
    }.items():
        if value < 0:
            raise ConfigError(key, f"must not be negative, got {value}", where)
    if not config.optim.lr > 0:
        raise ConfigError("optim.lr", f"must be positive, got {config.optim.lr}", where)
    if not config.data.train:
        raise ConfigError("data.train", "lists no shard folder", where)
    for i, source in enumerate(config.data.train):
        if not source.weight > 0:
            raise ConfigError(f"data.train[{i}].weight", f"must be positive, got {source.weight}", where)
    if "iuv" in config.model.frozen_modules and config.optim.iuv_only_steps > 0:
        raise ConfigError(
            "optim.iuv_only_steps",
            "model.init freezes the IUV estimator, so the IUV-only phase would train nothing: set "
            f"optim.iuv_only_steps=0 (it is {config.optim.iuv_only_steps})",
            where,
        )


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
    """Reads a training YAML (or the defaults when `path` is None), applies overrides and checks the whole
    config, the network's included; ConfigError naming the file or override and the key otherwise."""
    overrides = list(overrides or [])
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config not found: {path}")
        data = load_yaml(path)
    data = apply_overrides(data, overrides)
    try:
        config = build(TrainConfig, data)
        validate_knobs(config)
        config.danet_config()  # fail early on a bad model section
    except ConfigError as err:
        raise err.at(_origin(err.key, overrides, path)) from None
    return config


def config_as_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain data (for checkpoints and logs), including the resolved network config."""
    out = dataclasses.asdict(config)
    out["resolved_model"] = config_to_dict(config.danet_config())
    return out
