"""One training epoch and one evaluation pass."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import distributed
from ..alias import alias_loss


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the run stops and the last good checkpoint is kept."""


@dataclass
class StepOptions:
    alias_lambda: float = 0.0
    alias_include_mask: bool = False
    bf16: bool = False
    max_steps: int | None = None


def _quiet(dist_info: distributed.DistInfo) -> dict:
    """Progress bars on the main process only (elsewhere tqdm's defaults, e.g. TQDM_DISABLE=1, apply)."""
    return {} if dist_info.is_main else {"disable": True}


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opts: StepOptions):
    """The training objective, cross-entropy + λ L_HF (Sec. 3.3), its cross-entropy part, and the logits."""
    with autocast(x.device, opts.bf16):
        logits = model(x)
        ce = F.cross_entropy(logits.float(), y)
    loss = ce
    if opts.alias_lambda:
        loss = ce + opts.alias_lambda * alias_loss(distributed.unwrap(model), "together", opts.alias_include_mask)
    return loss, ce, logits


def train_epoch(model, loader, optimizer, scheduler, device, opts: StepOptions, epoch: int,
                dist_info: distributed.DistInfo, desc: str = "train") -> dict[str, float]:
    model.train()
    totals = torch.zeros(4, dtype=torch.float64, device=device)        # loss sum, CE sum, correct, count
    steps = len(loader) if opts.max_steps is None else min(len(loader), opts.max_steps)
    bar = tqdm(loader, total=steps, desc=f"{desc} epoch {epoch}", leave=False, **_quiet(dist_info))
    for step, (x, y) in enumerate(bar):
        if step >= steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss, ce, logits = batch_loss(model, x, y, opts)
        check = distributed.all_reduce_sum(loss.detach().reshape(1).double().clone(), dist_info)
        if not torch.isfinite(check).all():
            raise NonFiniteLossError(f"non-finite loss ({loss.item()}) at epoch {epoch}, step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        totals += torch.stack([loss.detach().double() * len(y), ce.detach().double() * len(y),
                               (logits.argmax(1) == y).sum().double(),
                               torch.tensor(len(y), dtype=torch.float64, device=device)])
        bar.set_postfix(loss=f"{loss.item():.4f}")
    loss_sum, ce_sum, correct, count = distributed.all_reduce_sum(totals, dist_info).tolist()
    # train_loss is the cross-entropy, comparable with test_loss; train_objective adds λ L_HF when it is on
    return {"train_loss": ce_sum / count, "train_objective": loss_sum / count, "train_acc": correct / count}


@torch.no_grad()
def evaluate(model, loader, device, opts: StepOptions, dist_info: distributed.DistInfo,
             prefix: str = "test") -> dict[str, float]:
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    for x, y in tqdm(loader, desc=prefix, leave=False, **_quiet(dist_info)):
        x, y = x.to(device), y.to(device)
        with autocast(device, opts.bf16):
            logits = model(x).float()
        totals += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(),
                               (logits.argmax(1) == y).sum().double(),
                               torch.tensor(len(y), dtype=torch.float64, device=device)])
    loss_sum, correct, count = distributed.all_reduce_sum(totals, dist_info).tolist()
    return {f"{prefix}_loss": loss_sum / count, f"{prefix}_acc": correct / count}
