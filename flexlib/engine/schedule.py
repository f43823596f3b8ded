"""App. D.2 optimization: Adam, mask parameters at 0.1x lr, linear warmup for 5 epochs then cosine annealing.

The schedule steps once per optimizer step (warmup and cosine are measured in steps: epochs x steps_per_epoch).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.optim import lr_scheduler

from .config import OptimConfig
from ..params import param_groups


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Adam:
    """Adam with two groups: ``lr`` for everything, ``mask_lr_factor * lr`` for the Gaussian mask parameters.

    Adam's own weight_decay is used with ``weight_decay_form="adam"`` only; "kernel_norm" decays through the loss
    (flexlib.engine.weight_decay), as the official code does."""
    decay = cfg.weight_decay if cfg.weight_decay_form == "adam" else 0.0
    return torch.optim.Adam(param_groups(model, cfg.lr, cfg.mask_lr_factor, decay))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs: int,
                    steps_per_epoch: int) -> lr_scheduler.LRScheduler:
    """Warmup from lr / W to lr over W = warmup_epochs x steps_per_epoch steps, then cosine to 0 at the end
    (`schedule="cosine"`) or lr held (`"warmup_constant"`); `"constant"` holds lr from the first step.

    lr(s) = lr (1/W + (1 - 1/W) s / W) for s < W;  lr(s) = lr/2 (1 + cos(pi (s - W) / (T - W))) for s >= W.
    """
    if cfg.schedule == "constant":
        return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    total = max(1, epochs * steps_per_epoch)
    warmup = min(cfg.warmup_epochs * steps_per_epoch, total)
    if cfg.schedule == "warmup_constant":
        after = lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    else:
        after = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))
    if warmup == 0:
        return after
    linear = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup)
    return lr_scheduler.SequentialLR(optimizer, [linear, after], milestones=[warmup])
