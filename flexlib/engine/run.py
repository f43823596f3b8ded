"""A classification run: data, model, App. D.2 optimization, per-epoch metrics, checkpoints, exact resume."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from . import checkpoint, distributed
from .config import ExperimentConfig, from_dict, to_dict
from ..data import ClassificationData, build
from .loop import StepOptions, evaluate, train_epoch
from .metrics import mask_stats, write_metrics
from .provenance import provenance
from .schedule import build_optimizer, build_scheduler

CHECKPOINT = "checkpoint.pt"


@dataclass
class Stage:
    name: str                      # "train", or "finetune" at the target resolution (Sec. 4.3)
    epochs: int
    resolution: int | None


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


def stages_of(cfg: ExperimentConfig) -> list[Stage]:
    if cfg.resolution is None:
        return [Stage("train", cfg.train.epochs, cfg.data.resolution)]
    return [Stage("train", cfg.train.epochs, cfg.resolution.source),
            Stage("finetune", cfg.resolution.finetune_epochs, cfg.resolution.target)]


def default_model(cfg: ExperimentConfig, data: ClassificationData) -> nn.Module:
    from ..models import create
    return create(cfg.model.name, data.in_channels, data.num_classes, **cfg.model.kwargs)


def resolve_device(name: str, info: distributed.DistInfo) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{info.local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_run_config(run_dir: str | Path) -> ExperimentConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a flexlib run folder: no config.yaml in it")
    return from_dict(ExperimentConfig, yaml.safe_load(path.read_text()), where=str(path))


def run_params(params_file: str | Path, profile: str = "full", overrides: list[str] | None = None,
               name: str | None = None, **kwargs) -> RunResult:
    """What `python -m flexlib train params_file --profile P --set ...` does, from Python (notebooks)."""
    from .config import load_config
    cfg = load_config(params_file, profile, overrides)
    return run_experiment(cfg, name or f"{Path(params_file).stem}-{profile}", **kwargs)


def initial_model(cfg: ExperimentConfig) -> nn.Module:
    """The model `run_experiment(cfg)` starts training from: the same config and seed, so the same initial weights."""
    data = build(replace(cfg.data, resolution=stages_of(cfg)[0].resolution), cfg.train.seed)
    torch.manual_seed(cfg.train.seed)
    return default_model(cfg, data)


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model of a run as its latest checkpoint left it (after its last finished epoch), in eval mode.

    The model is built with the run's config.yaml; a run with a resolution stage past its first is retargeted
    as the run was (eq. 9), so its FlexConvs carry the same sampling-rate factor."""
    from ..flexconv import FlexConv
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    state = checkpoint.load(run_dir / CHECKPOINT, map_location=device)
    model = initial_model(cfg)
    stages = stages_of(cfg)
    if state["stage"] > 0 and any(isinstance(m, FlexConv) for m in model.modules()):
        from ..resolution import retarget
        for previous, stage in zip(stages[:state["stage"]], stages[1:state["stage"] + 1]):
            retarget(model, previous.resolution, stage.resolution)
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def _loaders(data: ClassificationData, cfg: ExperimentConfig, info: distributed.DistInfo):
    if cfg.train.batch_size % info.world_size:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} must be divisible by the {info.world_size} "
                         f"processes (it is the global batch size)")
    batch = cfg.train.batch_size // info.world_size
    sampler = DistributedSampler(data.train, info.world_size, info.rank, shuffle=True, seed=cfg.train.seed)
    train = DataLoader(data.train, batch_size=batch, sampler=sampler, num_workers=cfg.data.num_workers,
                       drop_last=len(sampler) >= batch, pin_memory=torch.cuda.is_available())
    test_part = Subset(data.test, range(info.rank, len(data.test), info.world_size))   # no padding duplicates
    test = DataLoader(test_part, batch_size=cfg.train.eval_batch_size or batch, num_workers=cfg.data.num_workers)
    return train, sampler, test


def _new_run_dir(cfg: ExperimentConfig, name: str) -> Path:
    run_dir = Path(cfg.train.out_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    suffix, candidate = 1, run_dir
    while candidate.exists():
        suffix, candidate = suffix + 1, Path(f"{run_dir}-{suffix}")
    candidate.mkdir(parents=True)
    return candidate


def run_experiment(cfg: ExperimentConfig, name: str = "run", run_dir: str | Path | None = None,
                   resume: bool = False, stop_after_epochs: int | None = None,
                   model_fn: Callable[[ExperimentConfig, ClassificationData], nn.Module] = default_model) -> RunResult:
    """Train (and, with ``cfg.resolution``, retarget and fine-tune) as App. D.2 describes.

    ``resume=True`` continues the run in ``run_dir`` from its checkpoint. ``stop_after_epochs`` ends this session
    after that many epochs (as a killed or time-limited job would), leaving a resumable run.
    """
    info = distributed.setup(resolve_device(cfg.train.device, distributed.DistInfo()).type)
    device = resolve_device(cfg.train.device, info)
    if cfg.train.precision == "bf16" and device.type != "cuda":
        raise ValueError("train.precision=bf16 needs a CUDA device; use fp32 on CPU")
    opts = StepOptions(cfg.train.alias_lambda, cfg.train.alias_include_mask, cfg.train.precision == "bf16",
                       cfg.train.max_steps_per_epoch)
    stages = stages_of(cfg)
    state = checkpoint.load(Path(run_dir) / CHECKPOINT) if resume else None
    data = build(replace(cfg.data, resolution=stages[0].resolution), cfg.train.seed)   # fails before any folder
    if resume:
        run_dir = Path(run_dir)
    elif info.is_main:
        run_dir = Path(run_dir) if run_dir is not None else _new_run_dir(cfg, name)
        run_dir.mkdir(parents=True, exist_ok=True)
    history = state["history"] if state else []
    start_stage, start_epoch = (state["stage"], state["epoch"]) if state else (0, 0)

    torch.manual_seed(cfg.train.seed)
    model = model_fn(cfg, data).to(device)
    if state:
        model.load_state_dict(state["model"])
    torch.manual_seed(cfg.train.seed + info.rank)
    if info.is_main and not resume:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        meta = {"name": name, "dataset": data.name, "in_channels": data.in_channels, "num_classes": data.num_classes,
                "seed": cfg.train.seed, "config": to_dict(cfg),
                "parameters": sum(p.numel() for p in model.parameters()), **provenance(device, info.world_size)}
        (run_dir / "metadata.json").write_text(json.dumps(meta, indent=1))
    ddp_model = distributed.wrap(model, info, device, cfg.train.sync_batchnorm)
    epochs_run = 0
    try:
        for si, stage in enumerate(stages):
            if si > 0:
                from ..flexconv import FlexConv
                from ..resolution import retarget
                if any(isinstance(m, FlexConv) for m in model.modules()):   # discrete kernels keep their pixels
                    retarget(model, stages[si - 1].resolution, stage.resolution)
                data = build(replace(cfg.data, resolution=stage.resolution), cfg.train.seed)
            if si < start_stage:
                continue
            train_loader, sampler, test_loader = _loaders(data, cfg, info)
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
                       **evaluate(model, test_loader, device, opts, info)}
                history.append(row)
            for epoch in range(first_epoch, stage.epochs + 1):
                started = time.time()
                sampler.set_epoch(epoch)
                row = {"stage": stage.name, "epoch": epoch, "resolution": stage.resolution,
                       **train_epoch(ddp_model, train_loader, optimizer, scheduler, device, opts, epoch, info,
                                     desc=stage.name),
                       **evaluate(model, test_loader, device, opts, info),
                       "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - started, 2),
                       **mask_stats(model)}
                history.append(row)
                if info.is_main:
                    write_metrics(history, run_dir)
                    checkpoint.save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                            "scheduler": scheduler.state_dict(), "stage": si, "epoch": epoch,
                                            "rng": checkpoint.rng_state(), "history": history}, run_dir / CHECKPOINT)
                    print(f"[{stage.name} {epoch}/{stage.epochs}] loss {row['train_loss']:.4f} "
                          f"train acc {row['train_acc']:.4f} test acc {row['test_acc']:.4f} ({row['seconds']} s)")
                epochs_run += 1
                if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
                    return RunResult(run_dir, data.name, history, finished=False)
    finally:
        distributed.cleanup()
    if info.is_main:
        (run_dir / "summary.json").write_text(json.dumps({"dataset": data.name, "final": history[-1]}, indent=1))
    return RunResult(run_dir, data.name, history, finished=True)
