"""One training epoch and one evaluation pass."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

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


def _quiet(dist_info: distributed.DistInfo) -> dict:
    """Progress bars in a terminal on the main process only (each epoch ends with a printed line anyway; elsewhere
    tqdm's defaults, e.g. TQDM_DISABLE=1, apply)."""
    return {"terminal_only": True} if dist_info.is_main else {"disable": True}


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opts: StepOptions):
    """The training objective (cross-entropy + λ L_HF (Sec. 3.3) + the kernel-norm weight decay), its
    cross-entropy part, and the logits."""
    with autocast(x.device, opts.bf16):
        logits = model(x)
        ce = F.cross_entropy(logits.float(), y)
        loss = ce
        if opts.kernel_weight_decay:
            loss = loss + opts.kernel_weight_decay * model_kernel_norm_penalty(distributed.unwrap(model))
    if opts.alias_lambda:
        loss = loss + opts.alias_lambda * alias_loss(distributed.unwrap(model), "together", opts.alias_include_mask)
    return loss, ce, logits


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
        loss, ce, logits = batch_loss(model, x, y, opts)
        means = distributed.all_reduce_sum(torch.stack([loss.detach(), ce.detach()]).double(), dist_info)
        objective, ce_mean = (means / dist_info.world_size).tolist()
        at = f"epoch {epoch}, step {step} ({desc} stage)"
        check_loss(objective, ce_mean, logits.shape[1], opts.divergence_factor, at)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        check_state(distributed.unwrap(model), dist_info, at)
        totals += torch.stack([loss.detach().double() * len(y), ce.detach().double() * len(y),
                               (logits.argmax(1) == y).sum().double(),
                               torch.tensor(len(y), dtype=torch.float64, device=device)])
        bar.set_postfix(loss=f"{objective:.4f}")
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
