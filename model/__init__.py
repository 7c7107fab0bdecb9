"""DaNet (Zhang et al., TPAMI): dense-body-part network for 3D human shape and pose.

Entry points: `DaNet` (model.danet), configs (`preset("paper" | "tiny")`, `load_config`), `danet_losses`
(model.losses) and metrics (model.metrics).
"""

from model.config import DaNetConfig, config_from_dict, load_config, preset
from model.danet import DaNet
from model.losses import danet_losses

__all__ = ["DaNet", "DaNetConfig", "config_from_dict", "danet_losses", "load_config", "preset"]
