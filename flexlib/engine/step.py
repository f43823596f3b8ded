"""One training step and one evaluation pass: the objective (cross-entropy + the alias regularizer + the authors'
kernel-norm weight decay), `train_step`, a training epoch with its divergence checks, and `evaluate`.

Weight decay (``optim.weight_decay_form: kernel_norm``, rjbruin/flexconv's ``LnLoss``, added to the loss; their Adam
has no weight_decay of its own):

    L_wd = weight_decay · Σ_{CKConv/FlexConv layers} (‖ψ‖₂ + ‖b‖₂)

ψ is the generated kernel the layer used in the forward pass (masked, cropped, resolution factor included), b its
bias, ‖·‖₂ the unsquared L2 norm over all entries; no other layer (N-Jet, discrete convolutions, norms, the
classifier) is decayed.

A run has diverged when
  1. the training objective of a step is NaN or ±inf, or
  2. the cross-entropy of a step exceeds ``factor`` × ln(classes) (``train.divergence_factor``, default 100; null
     turns this rule off): a model a hundred times worse than guessing uniformly has blown up, or
  3. after an optimizer step a parameter or a floating-point buffer (BatchNorm running statistics) holds NaN or
     ±inf; checked before the next forward pass, so a NaN mask σ is reported here and never reaches the crop, or
  4. the test loss after an epoch is NaN or ±inf.
The run then stops with a DivergenceError naming the epoch, the step and what diverged; the loss is checked before
the update, so a diverged step changes no weight, and the epoch's checkpoint is not written. Under DDP every process
takes the same decision.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .._progress import progress
from ..layers.alias import alias_loss
from ..layers.flexconv import FlexConv


# -- divergence --------------------------------------------------------------------------------------------------------
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


# -- weight decay ------------------------------------------------------------------------------------------------------
def kernel_norm_penalty(kernels: Iterable[torch.Tensor], biases: Iterable[torch.Tensor | None]) -> torch.Tensor:
    """Σ_l ‖ψ_l‖₂ + Σ_l ‖b_l‖₂: unsquared L2 norms over all entries (the gradient at a zero tensor is 0), in float32
    or wider."""
    terms = [torch.linalg.vector_norm(t, dtype=torch.promote_types(t.dtype, torch.float32))
             for t in [*kernels, *biases] if t is not None]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def used_kernels(model: nn.Module) -> list[tuple[FlexConv, torch.Tensor | None]]:
    """Every CKConv/FlexConv of ``model`` (CKConv is a FlexConv without mask) with the kernel of its latest forward
    pass, generated again by ``kernel_for(last_kernel_size)`` (the same values and gradient, for one more
    kernel-network evaluation); None for a layer that has not run."""
    return [(conv, conv.kernel_for(conv.last_kernel_size) if conv.last_kernel_size is not None else None)
            for conv in model.modules() if isinstance(conv, FlexConv)]


def model_kernel_norm_penalty(model: nn.Module) -> torch.Tensor:
    """Σ over the CKConv/FlexConv layers of ``model`` of ‖ψ‖₂ + ‖b‖₂, to be called right after a forward pass."""
    pairs = used_kernels(model)
    return kernel_norm_penalty([k for _, k in pairs], [conv.bias for conv, _ in pairs])


# -- the step, the epoch, the evaluation -------------------------------------------------------------------------------
@dataclass
class StepOptions:
    alias_lambda: float = 0.0
    alias_include_mask: bool = False
    bf16: bool = False
    max_steps: int | None = None
    kernel_weight_decay: float = 0.0           # optim.weight_decay with weight_decay_form "kernel_norm"
    divergence_factor: float | None = None     # train.divergence_factor (the rules above)
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
    decay (flexlib.engine.step). The cross-entropy is computed in the logits' own precision (float32 from
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
def evaluate(model, loader, device, opts: StepOptions, dist_info: distributed.DistInfo, prefix: str = "test",
             progress_bar: bool = True) -> dict[str, float]:
    """Mean cross-entropy and accuracy over ``loader`` (summed over DDP processes); with ``opts.top5`` also the
    top-5 accuracy (Table 7): the label is among the five largest logits."""
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)        # loss sum, correct, top-5 correct, count
    quiet = _quiet(dist_info) if progress_bar else {"disable": True}
    for x, y in progress(loader, desc=prefix, leave=False, **quiet):
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
