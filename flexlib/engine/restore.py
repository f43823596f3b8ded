"""Reading a run back: its config, its latest usable checkpoint, its model."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from . import checkpoint, yamlfile
from .config import ConfigError, ExperimentConfig, from_dict
from ..data import ClassificationData, build

CHECKPOINT = "checkpoint.pt"
STATE_KEYS = {"model": dict, "optimizer": dict, "scheduler": dict, "stage": int, "epoch": int, "rng": dict,
              "history": list}


@dataclass
class Stage:
    name: str                      # "train", or "finetune" at the target resolution (Sec. 4.3)
    epochs: int
    resolution: int | None


def stages_of(cfg: ExperimentConfig) -> list[Stage]:
    if cfg.resolution is None:
        return [Stage("train", cfg.train.epochs, cfg.data.resolution)]
    return [Stage("train", cfg.train.epochs, cfg.resolution.source),
            Stage("finetune", cfg.resolution.finetune_epochs, cfg.resolution.target)]


def default_model(cfg: ExperimentConfig, data: ClassificationData) -> nn.Module:
    from ..models import create
    try:
        return create(cfg.model.name, data.in_channels, data.num_classes, **cfg.model.kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model.kwargs: {cfg.model.name} with {cfg.model.kwargs} cannot be built: "
                          f"{' '.join(str(err).split())}") from err


def load_run_config(run_dir: str | Path) -> ExperimentConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a flexlib run folder: no config.yaml in it")
    try:
        raw = yamlfile.read(path)
    except yamlfile.YAMLError as err:
        raise ConfigError(str(err)) from None
    return from_dict(ExperimentConfig, raw, where=str(path))


def initial_model(cfg: ExperimentConfig) -> nn.Module:
    """The model `run_experiment(cfg)` starts training from: the same config and seed, so the same initial weights."""
    data = build(replace(cfg.data, resolution=stages_of(cfg)[0].resolution), cfg.train.seed)
    torch.manual_seed(cfg.train.seed)
    return default_model(cfg, data)


def load_state(run_dir: Path, map_location="cpu") -> dict:
    """The run's latest usable checkpoint (the previous one, with a warning, when the latest is unusable)."""
    state, path = checkpoint.load_latest(run_dir / CHECKPOINT, map_location)
    state = state if isinstance(state, dict) else {}
    wrong = [k for k, kind in STATE_KEYS.items() if not isinstance(state.get(k), kind)]
    if wrong:
        raise checkpoint.CheckpointError(f"{path} is not a run checkpoint: missing or wrong {wrong}")
    state["path"] = path
    return state


def load_weights(model: nn.Module, state: dict) -> None:
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise checkpoint.CheckpointError(f"{state['path']} does not fit the model of the run's config.yaml: "
                                         f"{' '.join(str(err).split())[:300]}") from None


def change_resolution(model: nn.Module, source_res: int, target_res: int) -> None:
    """Prepare a model trained at `source_res` px for `target_res` px, as the authors' run_crossres.py does: every
    FlexConv/CKConv's kernel × (r₁/r₂)^D (eq. 9) and every N-Jet's σ × r₂/r₁; discrete kernels keep their pixels."""
    from ..flexconv import FlexConv
    from ..models.njet import retarget_njets
    if any(isinstance(m, FlexConv) for m in model.modules()):
        from ..resolution import retarget
        retarget(model, source_res, target_res)
    retarget_njets(model, source_res, target_res)


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model of a run as its latest checkpoint left it (after its last finished epoch), in eval mode.

    The model is built with the run's config.yaml; a run with a resolution stage past its first is changed to that
    resolution as the run was (`change_resolution`: eq. 9 for FlexConvs, σ for N-Jets)."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    state = load_state(run_dir, map_location=device)
    model = initial_model(cfg)
    stages = stages_of(cfg)
    for previous, stage in zip(stages[:state["stage"]], stages[1:state["stage"] + 1]):
        change_resolution(model, previous.resolution, stage.resolution)
    load_weights(model, state)
    return model.to(device).eval()
