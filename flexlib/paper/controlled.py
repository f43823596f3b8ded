"""Training on a controlled task (flexlib.data.controlled): every model of a comparison, with every seed, on fresh
batches of the task, each step one `flexlib.engine.train_step` (Adam, mask parameters at `mask_lr_factor`× lr),
with the test accuracy, the masks' σ and the receptive field recorded along the way.

Used by the `receptive_field` notebook (do learned kernel sizes follow where the information lies?) and the
`mask_prior` notebook (§5: a mask initialized on the first element of a sequence).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd
import torch

from ..engine import OptimConfig, build_optimizer, build_scheduler, train_step
from ..models import count_parameters, create
from .analysis import flexconv_layers, receptive_field


@dataclass(frozen=True)
class Contender:
    """One model of a comparison: its label in tables and figures, a registry name and create() overrides."""
    label: str
    model: str
    kwargs: dict = field(default_factory=dict, hash=False)

    @classmethod
    def from_list(cls, entry) -> "Contender":
        label, model, kwargs = entry
        return cls(label, model, dict(kwargs))


def build(contender: Contender, task, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create(contender.model, task.in_channels, task.num_classes, **contender.kwargs)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Test accuracy (%) in eval mode, in chunks of `batch`."""
    model.eval()
    correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(y), batch))
    return 100.0 * correct / len(y)


def mask_sigmas(model: torch.nn.Module) -> list[float]:
    """Each FlexConv's mask σ (mean over its dimensions), in depth order; [] for a model without masks."""
    return [float(conv.mask.sigma.detach().mean()) for _, conv in flexconv_layers(model) if conv.mask is not None]


def train_on_task(model: torch.nn.Module, task, test: tuple[torch.Tensor, torch.Tensor], *, steps: int, batch: int,
                  optim: OptimConfig, seed: int, eval_every: int, device: str = "cpu") -> list[dict]:
    """Train `model` for `steps` steps on fresh batches of `task` (drawn from `seed`); every `eval_every` steps
    (and at step 0) record the test accuracy, the mean training loss since the last record, each mask's σ and the
    receptive field. The schedule is the engine's (`optim.schedule`, `optim.warmup_epochs` counted in units of
    `eval_every` steps)."""
    model.to(device)
    generator = torch.Generator().manual_seed(10_000 + seed)
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, epochs=max(1, steps // eval_every), steps_per_epoch=eval_every)
    x_test, y_test = (t.to(device) for t in test)
    size = tuple(x_test.shape[2:])

    def record(step: int, losses: list[float], seconds: float) -> dict:
        sigmas = mask_sigmas(model)
        return {"step": step, "test_acc": accuracy(model, x_test, y_test),
                "train_loss": sum(losses) / len(losses) if losses else float("nan"), "seconds": seconds,
                "mean_sigma": sum(sigmas) / len(sigmas) if sigmas else float("nan"),
                "receptive_field": receptive_field(model, size), **{f"sigma[{i}]": s for i, s in enumerate(sigmas)}}

    history, losses, seconds = [record(0, [], 0.0)], [], 0.0
    for step in range(1, steps + 1):
        model.train()
        x, y = task.batch(batch, generator)
        start = time.perf_counter()
        losses.append(float(train_step(model, optimizer, x.to(device), y.to(device), scheduler=scheduler)))
        seconds += time.perf_counter() - start
        if step % eval_every == 0 or step == steps:
            history.append(record(step, losses, seconds))
            losses = []
    return history


def run_comparison(tasks: dict[str, object], contenders: list[Contender], seeds: list[int], *, steps: int,
                   batch: int, optim: OptimConfig, test_size: int, eval_every: int, device: str = "cpu",
                   test_seed: int = 12345, keep_models: bool = False, log=print):
    """Every contender with every seed on every task. Returns (per_run, curves, models): one line per run (final test
    accuracy, final masks, receptive field, parameters, seconds), the recorded history of every run, and the trained
    models by (task, label, seed) if `keep_models`."""
    lines, curves, models = [], [], {}
    for task_name, task in tasks.items():
        test = task.batch(test_size, torch.Generator().manual_seed(test_seed), train=False)
        for contender in contenders:
            for seed in seeds:
                model = build(contender, task, seed)
                history = train_on_task(model, task, test, steps=steps, batch=batch, optim=optim, seed=seed,
                                        eval_every=eval_every, device=device)
                final = history[-1]
                lines.append({"task": task_name, "model": contender.label, "seed": seed,
                              "test_acc": final["test_acc"], "mean_sigma": final["mean_sigma"],
                              "receptive_field": final["receptive_field"],
                              "initial_receptive_field": history[0]["receptive_field"],
                              "initial_mean_sigma": history[0]["mean_sigma"], "params": count_parameters(model),
                              "seconds": final["seconds"], "steps": steps, "registry": contender.model,
                              "kwargs": dict(contender.kwargs), "data": task.name})
                curves += [{"task": task_name, "model": contender.label, "seed": seed, **h} for h in history]
                if keep_models:
                    models[(task_name, contender.label, seed)] = model.cpu().eval()
                if log:
                    log(f"{task_name} | {contender.label} seed {seed}: test acc {final['test_acc']:.1f} %, receptive "
                        f"field {history[0]['receptive_field']} -> {final['receptive_field']}, "
                        f"{final['seconds']:.0f} s")
    return pd.DataFrame(lines), pd.DataFrame(curves), models


def steps_to(curves: pd.DataFrame, target: float, column: str = "test_acc") -> pd.DataFrame:
    """Per run (task, model, seed) of `curves`: the first recorded step at which `column` reaches `target` (NaN if
    it never does): a convergence speed."""
    lines = []
    for (task, model, seed), part in curves.groupby(["task", "model", "seed"], sort=False):
        reached = part.loc[part[column] >= target, "step"]
        lines.append({"task": task, "model": model, "seed": seed,
                      "steps_to_target": float(reached.min()) if len(reached) else float("nan")})
    return pd.DataFrame(lines)


def curve_area(curves: pd.DataFrame, column: str = "test_acc") -> pd.DataFrame:
    """Per run (task, model, seed): the mean of `column` over training, the area under its curve (trapezoid over the
    recorded steps) divided by the steps: higher when a run learns sooner, a convergence speed with a spread."""
    lines = []
    for (task, model, seed), part in curves.groupby(["task", "model", "seed"], sort=False):
        part = part.sort_values("step")
        steps, values = part["step"].to_numpy(float), part[column].to_numpy(float)
        area = float(((values[1:] + values[:-1]) / 2 * (steps[1:] - steps[:-1])).sum() / (steps[-1] - steps[0]))
        lines.append({"task": task, "model": model, "seed": seed, f"{column}_over_training": area})
    return pd.DataFrame(lines)
