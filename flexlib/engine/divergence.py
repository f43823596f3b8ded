"""When a run has diverged: the rule the engine applies at every training step and after every evaluation.

A run has diverged when
  1. the training objective (cross-entropy + regularizers) of a step is NaN or ±inf, or
  2. the cross-entropy of a step exceeds ``factor`` × ln(classes) (``train.divergence_factor``, default 100; null
     turns this rule off): a model a hundred times worse than guessing uniformly has blown up, or
  3. after an optimizer step a parameter or a floating-point buffer (BatchNorm running statistics) holds NaN or
     ±inf; checked before the next forward pass, so a NaN mask σ is reported here and never reaches the crop, or
  4. the test loss after an epoch is NaN or ±inf.
The run then stops with a DivergenceError naming the epoch, the step and what diverged. The epoch's checkpoint is
not written, so the last good one stays. Under DDP every process takes the same decision.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import distributed


class DivergenceError(FloatingPointError):
    """Training diverged; the message says at which epoch and step, and what."""


class NonFiniteLossError(DivergenceError):
    """The loss became NaN or infinite."""


def check_loss(objective: float, ce: float, num_classes: int, factor: float | None, at: str) -> None:
    """``at`` says when, e.g. "epoch 2, step 3 (train stage)"."""
    if not math.isfinite(objective):
        raise NonFiniteLossError(f"training diverged at {at}: non-finite loss ({objective})")
    limit = None if factor is None else factor * math.log(max(num_classes, 2))
    if limit is not None and ce > limit:
        raise DivergenceError(f"training diverged at {at}: cross-entropy {ce:.4g} exceeds {factor:g} x "
                              f"ln({num_classes} classes) = {limit:.4g}, the train.divergence_factor rule")


def _state(model: nn.Module) -> list[tuple[str, str, torch.Tensor]]:
    out = [("parameter", n, p.detach()) for n, p in model.named_parameters()]
    return out + [("buffer", n, b) for n, b in model.named_buffers() if b.is_floating_point()]


def non_finite_state(model: nn.Module) -> str:
    """Which parameters and buffers of ``model`` hold NaN or ±inf, in words ("" when none)."""
    bad = {"parameter": [], "buffer": []}
    for kind, name, t in _state(model):
        if not torch.isfinite(t).all():
            bad[kind].append(name)
    parts = []
    for kind, names in bad.items():
        if names:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            parts.append(f"{kind}{'s' if len(names) > 1 else ''} {', '.join(names[:3])}{more}")
    return "; ".join(parts)


def check_state(model: nn.Module, dist_info: distributed.DistInfo, at: str) -> None:
    """Raise DivergenceError if any parameter or floating buffer of any process is non-finite.

    One float64 sum per tensor (NaN and ±inf propagate, finite float32 values cannot overflow it)."""
    state = _state(model)
    if not state:
        return
    total = torch.stack([t.sum(dtype=torch.float64) for _, _, t in state]).sum()
    bad = distributed.all_reduce_sum((~torch.isfinite(total)).double().reshape(1), dist_info)
    if bad.item():
        what = non_finite_state(model) or "a tensor of another process"
        raise DivergenceError(f"training diverged at {at}: after the optimizer step, NaN or inf in {what}")


def check_evaluation(loss: float, at: str) -> None:
    if not math.isfinite(loss):
        raise DivergenceError(f"evaluation diverged after {at}: the test loss is {loss}")
