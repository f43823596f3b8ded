"""Optimizer parameter groups: the FlexConv mask parameters train at 0.1× the learning rate (App. D.2)."""
from __future__ import annotations

from torch import nn

from .mask import GaussianMask

MASK_LR_FACTOR = 0.1


def mask_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter (μ, σ and, if rotated, θ) of every GaussianMask in `model`."""
    return [p for m in model.modules() if isinstance(m, GaussianMask) for p in m.parameters()]


def param_groups(model: nn.Module, lr: float, mask_lr_factor: float = MASK_LR_FACTOR,
                 weight_decay: float = 0.0) -> list[dict]:
    """Two groups for torch.optim: everything else at `lr`, the mask parameters at `mask_lr_factor · lr`."""
    mask_ids = {id(p) for p in mask_parameters(model)}
    rest = [p for p in model.parameters() if id(p) not in mask_ids]
    groups = [{"name": "default", "params": rest, "lr": lr, "weight_decay": weight_decay}]
    if mask_ids:
        groups.append({"name": "mask", "params": mask_parameters(model), "lr": lr * mask_lr_factor,
                       "weight_decay": weight_decay})
    return groups
