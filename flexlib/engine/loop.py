"""One training epoch and one evaluation pass."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .divergence import check_loss, check_state
from .weight_decay import model_kernel_norm_penalty
from .._progress import progress
from ..alias import alias_loss


@dataclass
class StepOptions:
    alias_lambda: float = 0.0
    alias_include_mask: bool = False
    bf16: bool = False
    max_steps: int | None = None
    kernel_weight_decay: float = 0.0           # optim.weight_decay with weight_decay_form "kernel_norm"
    divergence_factor: float | None = None     # train.divergence_factor (flexlib.engine.divergence)
    top5: bool = False                         # record top-5 accuracy in evaluate

    def objective_kwargs(self) -> dict:
        """The keyword arguments of `training_objective` / `train_step` these options set."""
        return {"kernel_weight_decay": self.kernel_weight_decay, "alias_lambda": self.alias_lambda,
                "alias_include_mask": self.alias_include_mask, "bf16": self.bf16}


class Objective(NamedTuple):
    loss: torch.Tensor             # the training objective: cross-entropy + regularizers
    cross_entropy: torch.Tensor
    logits: torch.Tensor


_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _quiet(dist_info: distributed.DistInfo) -> dict:
    """Progress bars in a terminal on the main process only (each epoch ends with a printed line anyway; elsewhere
    tqdm's defaults, e.g. TQDM_DISABLE=1, apply)."""
    return {"terminal_only": True} if dist_info.is_main else {"disable": True}


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def training_objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, kernel_weight_decay: float = 0.0,
                       alias_lambda: float = 0.0, alias_include_mask: bool = False, bf16: bool = False) -> Objective:
    """The objective of one batch: cross-entropy + λ L_HF (§3.3, "together") + the authors' kernel-norm weight
    decay (flexlib.engine.weight_decay). The cross-entropy is computed in the logits' own precision (float32 from
    half or bfloat16 logits), so a float64 model's loss stays float64."""
    with autocast(x.device, bf16):
        logits = model(x)
        ce = F.cross_entropy(logits.float() if logits.dtype in _LOW_PRECISION else logits, y)
        loss = ce
        if kernel_weight_decay:
            loss = loss + kernel_weight_decay * model_kernel_norm_penalty(distributed.unwrap(model))
    if alias_lambda:
        loss = loss + alias_lambda * alias_loss(distributed.unwrap(model), "together", alias_include_mask)
    return Objective(loss, ce, logits)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
               scheduler=None, kernel_weight_decay: float = 0.0, alias_lambda: float = 0.0,
               alias_include_mask: bool = False, bf16: bool = False,
               before_update: Callable[[Objective], None] | None = None) -> torch.Tensor:
    """One optimization step of the paper's protocol (App. D.2), as the authors' trainer takes it: the objective
    (`training_objective`), its gradient, `optimizer.step()` (build it with `flexlib.engine.build_optimizer`: Adam,
    mask parameters at 0.1× lr), then `scheduler.step()` if given. The model's train/eval mode is the caller's.

    `before_update(objective)` runs between the forward pass and the update (the engine checks for divergence
    there, so a diverged step changes no weight). Returns the objective's value (a detached scalar tensor)."""
    objective = training_objective(model, x, y, kernel_weight_decay=kernel_weight_decay, alias_lambda=alias_lambda,
                                   alias_include_mask=alias_include_mask, bf16=bf16)
    if before_update is not None:
        before_update(objective)
    optimizer.zero_grad(set_to_none=True)
    objective.loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return objective.loss.detach()


def train_epoch(model, loader, optimizer, scheduler, device, opts: StepOptions, epoch: int,
                dist_info: distributed.DistInfo, desc: str = "train") -> dict[str, float]:
    model.train()
    totals = torch.zeros(4, dtype=torch.float64, device=device)        # loss sum, CE sum, correct, count
    steps = len(loader) if opts.max_steps is None else min(len(loader), opts.max_steps)
    bar = progress(loader, total=steps, desc=f"{desc} epoch {epoch}", leave=False, **_quiet(dist_info))
    for step, (x, y) in enumerate(bar):
        if step >= steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        at = f"epoch {epoch}, step {step} ({desc} stage)"

        def check_and_count(objective: Objective) -> None:
            """Divergence is decided before the update (a diverged step changes no weight); then the totals."""
            loss, ce = objective.loss.detach(), objective.cross_entropy.detach()
            means = distributed.all_reduce_sum(torch.stack([loss, ce]).double(), dist_info) / dist_info.world_size
            mean_loss, mean_ce = means.tolist()
            check_loss(mean_loss, mean_ce, objective.logits.shape[1], opts.divergence_factor, at)
            totals.add_(torch.stack([loss.double() * len(y), ce.double() * len(y),
                                     (objective.logits.argmax(1) == y).sum().double(),
                                     torch.tensor(len(y), dtype=torch.float64, device=device)]))
            bar.set_postfix(loss=f"{mean_loss:.4f}")

        train_step(model, optimizer, x, y, scheduler=scheduler, before_update=check_and_count,
                   **opts.objective_kwargs())
        check_state(distributed.unwrap(model), dist_info, at)
    loss_sum, ce_sum, correct, count = distributed.all_reduce_sum(totals, dist_info).tolist()
    # train_loss is the cross-entropy, comparable with test_loss; train_objective adds the regularizers that are on
    return {"train_loss": ce_sum / count, "train_objective": loss_sum / count, "train_acc": correct / count}


@torch.no_grad()
def evaluate(model, loader, device, opts: StepOptions, dist_info: distributed.DistInfo,
             prefix: str = "test") -> dict[str, float]:
    """Mean cross-entropy and accuracy over ``loader`` (summed over DDP processes); with ``opts.top5`` also the
    top-5 accuracy (Table 7): the label is among the five largest logits."""
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)        # loss sum, correct, top-5 correct, count
    for x, y in progress(loader, desc=prefix, leave=False, **_quiet(dist_info)):
        x, y = x.to(device), y.to(device)
        with autocast(device, opts.bf16):
            logits = model(x).float()
        top5 = (logits.topk(5, dim=1).indices == y[:, None]).any(1).sum() if opts.top5 else logits.new_zeros(())
        totals += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(),
                               (logits.argmax(1) == y).sum().double(), top5.double(),
                               torch.tensor(len(y), dtype=torch.float64, device=device)])
    loss_sum, correct, correct5, count = distributed.all_reduce_sum(totals, dist_info).tolist()
    out = {f"{prefix}_loss": loss_sum / count, f"{prefix}_acc": correct / count}
    if opts.top5:
        out[f"{prefix}_top5"] = correct5 / count
    return out
