"""Typed experiment configs loaded from the YAML files in ``params/``.

A params file has one mapping per profile. ``full`` holds the paper's values (App. D.2); every other profile
(``quick``) is deep-merged over ``full``, so it lists only what differs. ``--set a.b=value`` overrides follow.
Unknown keys are refused with the closest valid key as a suggestion.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..data.config import DataConfig


class ConfigError(ValueError):
    """A params file or override that does not match the config dataclasses."""


@dataclass
class ModelConfig:
    name: str                         # a name for flexlib.models.create, e.g. "flextcn-2", "flexnet-16"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    lr: float = 0.01
    mask_lr_factor: float = 0.1       # App. D.2: Gaussian mask parameters at 0.1x the learning rate
    weight_decay: float = 0.0
    warmup_epochs: int = 5
    schedule: Literal["cosine", "constant"] = "cosine"


@dataclass
class TrainConfig:
    epochs: int = 1
    batch_size: int = 64
    eval_batch_size: int | None = None
    seed: int = 0
    device: str = "auto"              # "auto", "cpu", "cuda", "cuda:1", ...
    precision: Literal["fp32", "bf16"] = "fp32"   # bf16 autocast, GPU only
    sync_batchnorm: bool = False      # convert BatchNorm to SyncBatchNorm under DDP
    alias_lambda: float = 0.0         # Sec. 3.3 aliasing regularizer weight; the paper uses 0.1
    alias_include_mask: bool = False  # regularize f+_FlexConv instead of f+_MAGNet (Sec. 4.3)
    max_steps_per_epoch: int | None = None
    out_dir: str = "runs"


@dataclass
class ResolutionConfig:
    """Train at ``source`` px, then test and fine-tune at ``target`` px (Sec. 4.3)."""
    source: int
    target: int
    finetune_epochs: int = 0


@dataclass
class ExperimentConfig:
    data: DataConfig
    model: ModelConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    resolution: ResolutionConfig | None = None
    description: str = ""


@dataclass
class FitConfig:
    """Kodak image fitting (Table 5, App. D.2): one ≈7k-parameter kernel net per Table 5 row and image."""
    rows: list[str] = field(default_factory=lambda: ["siren", "fourier", "gabor", "gabor-improved-init",
                                                     "magnet-fathony-init", "magnet"])   # flexlib.models.kodak
    images: list[int] = field(default_factory=lambda: list(range(1, 25)))                # kodimXX numbers
    iterations: int = 20000
    lr: float = 0.01
    siren_lr: float = 0.001           # App. D.2: SIRENs diverge at 0.01
    downsample: int = 1               # fit an image shrunk by this factor (quick profile); 1 = full 768x512
    seed: int = 0
    device: str = "auto"
    out_dir: str = "runs"
    description: str = ""


def load_config(path: str | Path, profile: str = "full", overrides: list[str] | None = None,
                cls: type = ExperimentConfig):
    """Read ``path``, merge ``profile`` over ``full``, apply ``key=value`` overrides, build ``cls``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict) or "full" not in raw:
        raise ConfigError(f"{path}: expected top-level profiles 'full' and e.g. 'quick', got {list(raw)}")
    if profile not in raw:
        raise ConfigError(f"{path}: no profile {profile!r}; available: {sorted(raw)}")
    merged = raw["full"] if profile == "full" else deep_merge(raw["full"], raw[profile] or {})
    for item in overrides or []:
        merged = deep_merge(merged, parse_override(item))
    return from_dict(cls, merged, where=f"{path.name} [{profile}]")


def parse_override(item: str) -> dict:
    """``"train.epochs=3"`` -> ``{"train": {"epochs": 3}}``; the value is parsed as YAML."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like section.key=value, e.g. train.epochs=3")
    out: Any = yaml.safe_load(value)
    for part in reversed(key.strip().split(".")):
        out = {part: out}
    return out


def deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls: type, data: Any, where: str = "config"):
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and checking types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint} Valid keys: {sorted(fields)}")
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {missing}")
    return cls(**{k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()})


def _coerce(hint, value, where: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(args[0], v, where) for v in value] if args else value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    if hint is Any:
        return value
    if hint is float:
        # PyYAML reads "1e-5" (no dot) as a string; accept it as the number it means.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif hint is bool and isinstance(value, bool):
        return value
    elif hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
