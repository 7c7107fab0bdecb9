"""Learning-rate schedules, stepped once per optimiser step.

"step": the paper's: the rate is multiplied by `lr_gamma` at each of `lr_milestones`.
"cosine": the rate falls from `lr` to `lr * lr_final_factor` along half a cosine over the run's steps; for
short runs (the CPU demo), where no step of the paper's schedule falls at a useful place.
"""

from __future__ import annotations

import math

import torch


def cosine_factor(step: int, total: int, final: float) -> float:
    """Multiplier of the base rate at `step` of `total`: 1 at 0, `final` at `total` and after."""
    progress = min(max(step, 0), total) / max(total, 1)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, optim_cfg, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler that `optim_cfg.lr_schedule` names (see the module doc)."""
    if optim_cfg.lr_schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(optim_cfg.lr_milestones), gamma=optim_cfg.lr_gamma
        )
    if optim_cfg.lr_schedule == "cosine":
        final = optim_cfg.lr_final_factor
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_factor(step, total_steps, final)
        )
    raise ValueError(f"optim.lr_schedule must be 'step' or 'cosine', got {optim_cfg.lr_schedule!r}")
