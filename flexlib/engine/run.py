"""A classification run: data, model, App. D.2 optimization (Adam, mask parameters at 0.1× lr, linear warmup then
cosine), per-epoch metrics, checkpoints, exact resume.

Nothing is lost: a run never takes a folder that holds anything; every epoch writes its checkpoint (verified,
atomic, the previous one kept, flexlib.engine.checkpoint) before its metrics, so metrics.json never runs ahead; a
diverging run stops before its epoch's checkpoint (flexlib.engine.step); a resume cleans what a killed process left
half-written and uses the previous checkpoint, with a warning, when the latest is unusable.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
import yaml
from torch import nn
from torch.optim import lr_scheduler
from torch.utils.data import DataLoader, DistributedSampler, Subset

from . import checkpoint, distributed
from .checkpoint import CHECKPOINT, change_resolution, default_model, load_state, load_weights, stages_of
from .config import ConfigError, ExperimentConfig, OptimConfig, to_dict, validated
from .distributed import resolve_device
from .provenance import provenance
from .step import DivergenceError, StepOptions, check_evaluation, evaluate, train_epoch
from ..models.weights import non_finite
from ..data import ClassificationData, build
from ..layers.params import param_groups


# -- optimization (App. D.2) -------------------------------------------------------------------------------------------
def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Adam:
    """Adam with two groups: ``lr`` for everything, ``mask_lr_factor * lr`` for the Gaussian mask parameters.

    Adam's own weight_decay is used with ``weight_decay_form="adam"`` only; "kernel_norm" decays through the loss
    (flexlib.engine.step), as the official code does."""
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


# -- metrics -----------------------------------------------------------------------------------------------------------
def mask_stats(model: nn.Module) -> dict[str, float]:
    """μ and σ of every FlexConv mask, keyed ``<module path>.mu[d]`` / ``.sigma[d]`` (paper units, eq. 1)."""
    out = {}
    for name, module in model.named_modules():
        mask = getattr(module, "mask", None)
        if isinstance(mask, nn.Module) and hasattr(mask, "mean") and hasattr(mask, "sigma"):
            for d, (mu, sigma) in enumerate(zip(mask.mean.detach().flatten().tolist(),
                                                mask.sigma.detach().flatten().tolist())):
                out[f"{name}.mu[{d}]"] = mu
                out[f"{name}.sigma[{d}]"] = sigma
    return out


@torch.no_grad()
def frequency_stats(model: nn.Module) -> dict[str, float]:
    """The analytic maximum frequencies averaged over the model's FlexConvs with a multiplicative filter network
    (f⁺_MAGNet, eq. 21; f⁺_FlexConv, eq. 22), in cycles per unit of [-1, 1]: what the alias regularizer (§3.3) acts
    on, recorded every epoch. Empty for models without such layers."""
    from ..layers.alias import flexconv_max_frequency, magnet_max_frequency
    from ..layers.flexconv import FlexConv
    from ..layers.kernelnets import MFN
    convs = [m for m in model.modules() if isinstance(m, FlexConv) and isinstance(m.kernel_net, MFN)]
    if not convs:
        return {}
    return {"f_magnet_mean": sum(float(magnet_max_frequency(c.kernel_net)) for c in convs) / len(convs),
            "f_flexconv_mean": sum(float(flexconv_max_frequency(c)) for c in convs) / len(convs)}


def write_metrics(rows: list[dict], run_dir: Path) -> None:
    """Rewrite both files, each atomically, from the full history (rows may gain columns, e.g. the fine-tuning
    stage)."""
    checkpoint.write_text(run_dir / "metrics.json", json.dumps(rows, indent=1))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    checkpoint.write_text(run_dir / "metrics.csv", text.getvalue())


# -- the run -----------------------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    run_dir: Path
    dataset: str
    history: list[dict]
    finished: bool

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    @property
    def metadata(self) -> dict:
        """The run's metadata.json (dataset, seed, parameter count, versions, device)."""
        return json.loads((self.run_dir / "metadata.json").read_text())


def run_params(params_file: str | Path, profile: str = "full", overrides: list[str] | None = None,
               name: str | None = None, **kwargs) -> RunResult:
    """What `python -m flexlib train params_file --profile P --set ...` does, from Python (notebooks)."""
    from .config import load_config
    cfg = load_config(params_file, profile, overrides)
    return run_experiment(cfg, name or f"{Path(params_file).stem}-{profile}", **kwargs)


def _loaders(data: ClassificationData, cfg: ExperimentConfig, info: distributed.DistInfo):
    """Train loader and sampler, and {"val": ..., "test": ...} evaluation loaders (val where the data has one)."""
    batch = cfg.train.batch_size // info.world_size
    sampler = DistributedSampler(data.train, info.world_size, info.rank, shuffle=True, seed=cfg.train.seed)
    train = DataLoader(data.train, batch_size=batch, sampler=sampler, num_workers=cfg.data.num_workers,
                       drop_last=len(sampler) >= batch, pin_memory=torch.cuda.is_available())
    evaluation = {}
    for split, dataset in (("val", data.val), ("test", data.test)):
        if dataset is not None:
            part = Subset(dataset, range(info.rank, len(dataset), info.world_size))   # no padding duplicates
            evaluation[split] = DataLoader(part, batch_size=cfg.train.eval_batch_size or batch,
                                           num_workers=cfg.data.num_workers)
    return train, sampler, evaluation


def _evaluate_all(model, loaders: dict, device, opts, info) -> dict:
    return {k: v for split, loader in loaders.items() for k, v in evaluate(model, loader, device, opts, info,
                                                                          prefix=split).items()}


BEST = "best.pt"


def _selection_key(row: dict) -> float:
    """What picks a stage's best epoch: validation accuracy where there is a validation split, else test accuracy
    (the authors' trainer: on the image datasets the test set is the validation set)."""
    return row.get("val_acc", row["test_acc"])


def _restore_best(model, history: list[dict], stage_name: str, run_dir, identity, info) -> dict | None:
    """Load the weights of the best epoch of `stage_name` (saved as best.pt) and return its metrics row."""
    rows = [h for h in history if h["stage"] == stage_name]
    if not rows:
        return None
    best = max(rows, key=_selection_key)       # the first of equals, as the saving in _train keeps it
    if best is not rows[-1]:
        saved = checkpoint.load(run_dir / BEST)
        checkpoint.check_run_checkpoint(saved, run_dir / BEST, identity or checkpoint.run_identity(run_dir),
                                        {"model": dict, "stage": str, "epoch": int})
        if (saved["stage"], saved["epoch"]) != (stage_name, best["epoch"]):
            raise checkpoint.CheckpointError(f"{run_dir / BEST} holds epoch {saved['epoch']} of {saved['stage']}, "
                                             f"not the best epoch {best['epoch']} of {stage_name}")
        model.load_state_dict(saved["model"])
    if info.is_main:
        print(f"[{stage_name}] back to the weights of epoch {best['epoch']} (best "
              f"{'validation' if 'val_acc' in best else 'test'} accuracy {_selection_key(best):.4f})")
    return best


def _check_runtime(cfg: ExperimentConfig, device: torch.device, info: distributed.DistInfo) -> None:
    """What a config can only be checked against on the machine that runs it."""
    if cfg.train.precision == "bf16" and device.type != "cuda":
        raise ConfigError(f"train.precision: 'bf16' needs a CUDA device, this run is on {device.type}; use fp32")
    if cfg.train.batch_size % info.world_size:
        raise ConfigError(f"train.batch_size: {cfg.train.batch_size} is the global batch size and must be divisible "
                          f"by the {info.world_size} processes")


def step_options(cfg: ExperimentConfig, num_classes: int) -> StepOptions:
    top5 = cfg.train.top5_accuracy if cfg.train.top5_accuracy is not None else num_classes >= 5
    if top5 and num_classes < 5:
        raise ConfigError(f"train.top5_accuracy: true needs at least 5 classes, the data has {num_classes}")
    decay = cfg.optim.weight_decay if cfg.optim.weight_decay_form == "kernel_norm" else 0.0
    return StepOptions(cfg.train.alias_lambda, cfg.train.alias_include_mask, cfg.train.precision == "bf16",
                       cfg.train.max_steps_per_epoch, decay, cfg.train.divergence_factor, top5)


def _write_start(folder: Path, cfg: ExperimentConfig, name: str, run_id: str, data: ClassificationData,
                 model: nn.Module, device: torch.device, info: distributed.DistInfo, config: bool = True) -> None:
    """config.yaml (unless kept) and metadata.json of a run that starts; the run id names the run in its
    checkpoints (flexlib.engine.checkpoint.run_identity)."""
    if config:
        checkpoint.write_text(folder / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    meta = {"name": name, "run_id": run_id, "dataset": data.name, "in_channels": data.in_channels,
            "num_classes": data.num_classes, "seed": cfg.train.seed, "config": to_dict(cfg),
            "parameters": sum(p.numel() for p in model.parameters()), **provenance(device, info.world_size)}
    checkpoint.write_text(folder / "metadata.json", json.dumps(meta, indent=1))


def _start_new(cfg: ExperimentConfig, name: str, run_dir, data: ClassificationData, model: nn.Module,
               device: torch.device, info: distributed.DistInfo, stack: contextlib.ExitStack) -> Path:
    """Claim and lock a fresh folder and write config.yaml and metadata.json; a failed start leaves no folder."""
    folder, created = checkpoint.claim(run_dir, cfg.train.out_dir, name)
    try:
        stack.enter_context(checkpoint.locked(folder))
        if not created:
            checkpoint.ensure_empty(folder)
        _write_start(folder, cfg, name, uuid.uuid4().hex, data, model, device, info)
    except BaseException:
        checkpoint.remove_if_created(folder, created)
        raise
    return folder


def _start_over(cfg: ExperimentConfig, folder: Path, data: ClassificationData, model: nn.Module,
                device: torch.device, info: distributed.DistInfo) -> None:
    """A run killed before its first checkpoint, started over in its own folder: the same config.yaml and run id,
    metadata.json written again (this machine, this start)."""
    try:
        meta = json.loads((folder / "metadata.json").read_text())
    except (OSError, ValueError):
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    print(f"note: {folder} has no checkpoint (the run stopped before finishing its first epoch); starting it over "
          f"there from its config.yaml", file=sys.stderr)
    _write_start(folder, cfg, meta.get("name", folder.name), meta.get("run_id") or uuid.uuid4().hex, data, model,
                 device, info, config=False)


# keys a resume may change: where things are and run, not what is computed
RESUMABLE_CHANGES = ("train.out_dir", "train.device", "data.root", "data.download", "data.num_workers")


def _resume(cfg: ExperimentConfig, run_dir, info: distributed.DistInfo,
            stack: contextlib.ExitStack) -> tuple[Path, dict | None]:
    """Lock the run, remove what a killed process left half-written, load its latest usable checkpoint and put
    the metrics back in step with it. No state (None): the run was killed before its first checkpoint and starts
    over in its folder."""
    folder = Path(run_dir)
    if not (folder / "config.yaml").is_file():
        raise FileNotFoundError(f"{folder} is not a flexlib run folder: no config.yaml in it")
    differ = checkpoint.config_differences(to_dict(cfg), to_dict(checkpoint.load_run_config(folder)),
                                           ignore=RESUMABLE_CHANGES)
    if differ:
        raise ConfigError(f"resume of {folder}: the config given differs from the run's config.yaml in "
                          f"{'; '.join(differ[:3])}{' ...' if len(differ) > 3 else ''}; continue a run with its own "
                          f"config (flexlib.engine.load_run_config({str(folder)!r}))")
    stack.enter_context(checkpoint.locked(folder, enabled=info.is_main))
    if info.is_main:
        checkpoint.remove_temporaries(folder)
    if not checkpoint.has_checkpoint(folder):
        others = [n for n in checkpoint.run_files(folder) if n not in ("config.yaml", "metadata.json")]
        if others:
            raise checkpoint.RunDirError(
                f"{folder} has no checkpoint ({CHECKPOINT}, {checkpoint.previous_path(CHECKPOINT)}) but holds "
                f"{', '.join(others[:4])}: it cannot continue, and flexlib does not start a run over on top of its "
                f"results; start it anew in another folder")
        return folder, None
    state = load_state(folder)
    if info.is_main:
        if state["path"] != folder / CHECKPOINT and (folder / CHECKPOINT).exists():
            os.replace(folder / CHECKPOINT, folder / f"{CHECKPOINT}.unusable")   # kept for a look, never loaded
        write_metrics(state["history"], folder)
    return folder, state


@contextlib.contextmanager
def deterministic(enabled: bool):
    """Deterministic algorithms (and no cuDNN autotuning) on or off for the duration of a run, as before after it;
    with them on, `conv_mode="auto"` never times (flexlib.layers.path_choice). warn_only: an op without a
    deterministic implementation warns rather than stops the run."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled and previous[2]
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]


def run_experiment(cfg: ExperimentConfig, name: str = "run", run_dir: str | Path | None = None,
                   resume: bool = False, stop_after_epochs: int | None = None,
                   model_fn: Callable[[ExperimentConfig, ClassificationData], nn.Module] = default_model) -> RunResult:
    """Train (and, with ``cfg.resolution``, retarget and fine-tune) as App. D.2 describes.

    ``resume=True`` continues the run in ``run_dir`` from its checkpoint. ``stop_after_epochs`` ends this session
    after that many epochs (as a killed or time-limited job would), leaving a resumable run. A diverging run raises
    DivergenceError (flexlib.engine.step) and keeps its last good checkpoint."""
    validated(cfg)
    if resume and run_dir is None:
        raise ConfigError("resume=True needs the run_dir of the run to continue")
    if stop_after_epochs is not None and stop_after_epochs < 1:
        raise ConfigError(f"stop_after_epochs must be >= 1, got {stop_after_epochs}")
    info = distributed.setup(resolve_device(cfg.train.device, distributed.DistInfo()).type)
    device = resolve_device(cfg.train.device, info)
    _check_runtime(cfg, device, info)
    stages = stages_of(cfg)
    with contextlib.ExitStack() as stack:
        stack.callback(distributed.cleanup)
        stack.enter_context(deterministic(cfg.train.deterministic))
        state = None
        if resume:
            run_dir, state = _resume(cfg, run_dir, info, stack)
        data = build(replace(cfg.data, resolution=stages[0].resolution), cfg.train.seed)   # fails before any folder
        opts = step_options(cfg, data.num_classes)
        torch.manual_seed(cfg.train.seed)
        model = model_fn(cfg, data).to(device)
        if state:
            load_weights(model, state)
        elif info.is_main and resume:
            _start_over(cfg, run_dir, data, model, device, info)
        elif info.is_main:
            run_dir = _start_new(cfg, name, run_dir, data, model, device, info, stack)
        identity = checkpoint.run_identity(run_dir) if info.is_main else None
        torch.manual_seed(cfg.train.seed + info.rank)
        return _train(cfg, model, data, stages, state, run_dir, identity, info, device, opts, stop_after_epochs)


def _save(state: dict, path: Path, identity: dict, at: str) -> None:
    """Write a run checkpoint stamped with the run's identity; one with NaN or inf weights or optimizer state is
    never written (DivergenceError naming the tensors)."""
    bad = non_finite({"model": state["model"], "optimizer": state.get("optimizer", {})})
    if bad:
        raise DivergenceError(f"training diverged at {at}: NaN or inf in {', '.join(bad[:3])}"
                              f"{' ...' if len(bad) > 3 else ''}; its checkpoint is not written")
    checkpoint.save_atomic({**state, "identity": identity}, path)


def _input_size(data: ClassificationData) -> tuple[int, ...]:
    return tuple(data.train[0][0].shape[1:])


def _record_compile(run_dir: Path, stats: dict, bound: int) -> None:
    """The compile cost so far into metadata.json (beside the per-epoch columns of metrics.json)."""
    meta = json.loads((run_dir / "metadata.json").read_text())
    meta["compile"] = {**stats, "crop_configuration_bound": bound}
    checkpoint.write_text(run_dir / "metadata.json", json.dumps(meta, indent=1))


def _train(cfg, model, data, stages, state, run_dir, identity, info, device, opts, stop_after_epochs) -> RunResult:
    history = state["history"] if state else []
    start_stage, start_epoch = (state["stage"], state["epoch"]) if state else (0, 0)
    if cfg.train.compile:     # in place and before the DDP wrap (torch's advice); training and evaluation compiled
        compiled_before = distributed.compile_stats()
        bound = distributed.compile_model(model, _input_size(data))
        if info.is_main:
            print(f"[compile] torch.compile: at most {bound} crop configurations at this resolution, each compiled "
                  f"once for training and once for evaluation; compile time is reported per epoch")
    ddp_model = distributed.wrap(model, info, device, cfg.train.sync_batchnorm)
    epochs_run = 0
    saved = f"epoch {state['epoch']} ({stages[state['stage']].name} stage)" if state else None
    for si, stage in enumerate(stages):
        if si > 0:
            change_resolution(model, stages[si - 1].resolution, stage.resolution)
            data = build(replace(cfg.data, resolution=stage.resolution), cfg.train.seed)
            if cfg.train.compile:
                bound = distributed.allow_recompiles(model, _input_size(data))
        if si < start_stage:
            continue
        train_loader, sampler, eval_loaders = _loaders(data, cfg, info)
        steps = len(train_loader) if opts.max_steps is None else min(len(train_loader), opts.max_steps)
        optimizer = build_optimizer(model, cfg.optim)
        scheduler = build_scheduler(optimizer, cfg.optim, stage.epochs, steps)
        first_epoch = start_epoch + 1 if si == start_stage else 1
        if state and si == start_stage:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            checkpoint.set_rng_state(state["rng"])
        elif si > 0:   # Sec. 4.3: accuracy at the target resolution right after upsampling
            row = {"stage": "target-before-finetune", "epoch": 0, "resolution": stage.resolution,
                   **_evaluate_all(model, eval_loaders, device, opts, info)}
            check_evaluation(row["test_loss"], f"the change to {stage.resolution} px")
            history.append(row)
        for epoch in range(first_epoch, stage.epochs + 1):
            started = time.time()
            sampler.set_epoch(epoch)
            try:
                row = {"stage": stage.name, "epoch": epoch, "resolution": stage.resolution,
                       **train_epoch(ddp_model, train_loader, optimizer, scheduler, device, opts, epoch, info,
                                     desc=stage.name),
                       **_evaluate_all(model, eval_loaders, device, opts, info),
                       "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - started, 2),
                       **(distributed.compile_stats(compiled_before) if cfg.train.compile else {}),
                       **frequency_stats(model), **mask_stats(model)}
                check_evaluation(row["test_loss"], f"epoch {epoch} ({stage.name} stage)")
            except DivergenceError as err:
                path = run_dir / CHECKPOINT if run_dir is not None else CHECKPOINT
                kept = f"the checkpoint of {saved} is kept in {path}" if saved else \
                    "no epoch had finished, so there is no checkpoint"
                err.args = (f"{err.args[0]}; {kept}. Lower optim.lr or check the data",)
                raise
            history.append(row)
            at = f"epoch {epoch} ({stage.name} stage)"
            if info.is_main:    # the checkpoint first: metrics.json never runs ahead of it
                _save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), "stage": si, "epoch": epoch,
                       "rng": checkpoint.rng_state(), "history": history}, run_dir / CHECKPOINT, identity, at)
                earlier = [h for h in history[:-1] if h["stage"] == stage.name]
                if cfg.train.restore_best and all(_selection_key(row) > _selection_key(h) for h in earlier):
                    _save({"model": model.state_dict(), "stage": stage.name, "epoch": epoch}, run_dir / BEST,
                          identity, at)
                write_metrics(history, run_dir)
                top5 = f" top-5 {row['test_top5']:.4f}" if "test_top5" in row else ""
                compiled = ""
                if cfg.train.compile:
                    _record_compile(run_dir, {k: row[k] for k in ("compile_seconds", "compiled_graphs")}, bound)
                    compiled = f", compiling {row['compile_seconds']} s so far, {row['compiled_graphs']} graphs"
                print(f"[{stage.name} {epoch}/{stage.epochs}] loss {row['train_loss']:.4f} "
                      f"train acc {row['train_acc']:.4f} test acc {row['test_acc']:.4f}{top5} "
                      f"({row['seconds']} s{compiled})")
            saved = at
            epochs_run += 1
            if cfg.train.restore_best and epoch == stage.epochs:
                best = _restore_best(model, history, stage.name, run_dir, identity, info)
                if info.is_main and best is not None and best is not row:   # resume and load_model see the best
                    _save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "stage": si, "epoch": epoch,
                           "rng": checkpoint.rng_state(), "history": history, "weights_of_epoch": best["epoch"]},
                          run_dir / CHECKPOINT, identity, at)
            if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
                return RunResult(run_dir, data.name, history, finished=False)
    if info.is_main:
        checkpoint.write_text(run_dir / "summary.json", json.dumps({"dataset": data.name, "final": history[-1]}, indent=1))
    return RunResult(run_dir, data.name, history, finished=True)
