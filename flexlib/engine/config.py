"""Typed experiment configs loaded from the YAML files in ``params/``.

A params file has one mapping per profile. ``full`` holds the paper's values (App. D.2); every other profile
(``quick``) is deep-merged over ``full``, so it lists only what differs. ``--set a.b=value`` overrides follow.
Unknown keys are refused with the closest valid key as a suggestion, duplicate keys and YAML syntax errors with
file:line, and every value is checked against what it may be (flexlib.engine.checks).
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import checks, yamlfile
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
    # "adam": Adam's weight_decay on every parameter. "kernel_norm": the official code's (rjbruin/flexconv LnLoss):
    # weight_decay * sum over CKConv/FlexConv layers of (||generated kernel||_2 + ||bias||_2) added to the loss.
    weight_decay_form: Literal["adam", "kernel_norm"] = "adam"
    warmup_epochs: int = 5
    # "cosine": App. D.2 (warmup, then cosine to 0); "constant": lr throughout (no warmup); "warmup_constant": the
    # warmup, then lr held (the masks keep moving to the last step, which a cosine's tail stops)
    schedule: Literal["cosine", "constant", "warmup_constant"] = "cosine"


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
    divergence_factor: float | None = 100.0   # stop when cross-entropy > this x ln(classes) (engine/divergence.py)
    top5_accuracy: bool | None = None        # record test top-5 accuracy (Table 7); None: with 5 classes or more
    # before each resolution change and at the end, go back to the weights of the stage's best epoch (by validation
    # accuracy where the data has a validation split, else test accuracy), as the authors' trainer does
    restore_best: bool = False
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
        raise ConfigError(f"params file {path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        raw = yamlfile.read(path)
    except yamlfile.YAMLError as err:
        raise ConfigError(str(err)) from None
    if not isinstance(raw, dict) or "full" not in raw:
        found = sorted(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
        raise ConfigError(f"{path}: expected top-level profiles 'full' and e.g. 'quick', got {found}")
    if profile not in raw:
        raise ConfigError(f"{path}: no profile {profile!r}; available: {sorted(raw)}")
    for name in {"full", profile}:
        if not isinstance(raw[name] or {}, dict):
            raise ConfigError(f"{path}: profile {name!r} must be a mapping of sections, got {raw[name]!r}")
    merged = raw["full"] if profile == "full" else deep_merge(raw["full"], raw[profile] or {})
    overridden = set()
    for item in overrides or []:
        update = parse_override(item)
        key = item.partition("=")[0].strip()
        if key.endswith(":"):
            parts = key.removesuffix(":").split(".")
            value = update
            for part in parts:
                value = value[part]
            merged = replace_path(merged, parts, value)
        else:
            merged = deep_merge(merged, update)
        overridden.add(key.removesuffix(":"))
    return from_dict(cls, merged, where=f"{path} [{profile}]", overridden=frozenset(overridden))


def parse_override(item: str) -> dict:
    """``"train.epochs=3"`` -> ``{"train": {"epochs": 3}}``; the value is parsed as YAML. A mapping value is merged
    into the profile's (``model.kwargs={width: 8}`` keeps the other kwargs); ``key:=value`` replaces it whole."""
    key, sep, value = item.partition("=")
    key = key.strip().removesuffix(":")
    if not sep or not key or "" in key.split("."):
        raise ConfigError(f"override {item!r} must look like section.key=value, e.g. train.epochs=3")
    try:
        out: Any = yamlfile.parse(value, f"--set {key}")
    except yamlfile.YAMLError as err:
        raise ConfigError(str(err)) from None
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def replace_path(base: dict, parts: list[str], value) -> dict:
    """A copy of `base` with the entry at the key path `parts` replaced by `value` (not merged into)."""
    out = dict(base)
    if len(parts) == 1:
        out[parts[0]] = value
    else:
        inner = out.get(parts[0])
        out[parts[0]] = replace_path(inner if isinstance(inner, dict) else {}, parts[1:], value)
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


def validated(config):
    """``config`` (e.g. built in Python) checked as a params file would be; the same object when valid."""
    from_dict(type(config), to_dict(config), where=type(config).__name__)
    return config


def from_dict(cls: type, data: Any, where: str = "config", key: str = "", overridden: frozenset = frozenset()):
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and checking every value's type and range.

    ``where`` names the source in messages (e.g. "params/experiments/x.yaml [quick]"), ``key`` the dotted path of
    this mapping inside it, ``overridden`` the dotted keys set by ``--set`` (named as such in messages)."""
    section = f" {key}" if key else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{_source(where, key, overridden)}{section}: expected a mapping of {cls.__name__} "
                          f"keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for name in data:
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise ConfigError(f"{_source(where, _join(key, name), overridden)}{section}: unknown key {name!r}{hint} "
                              f"Valid keys: {sorted(fields)}")
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}{section}: missing required key(s) {missing}")
    values = {}
    for name, value in data.items():
        dotted = _join(key, name)
        source = _source(where, dotted, overridden)
        values[name] = _coerce(hints[name], value, where, dotted, overridden)
        problem = checks.check_value(cls.__name__, name, values[name])
        if problem:
            raise ConfigError(f"{source} {dotted}: {values[name]!r} is not allowed; expected {problem}")
    if cls is ModelConfig and values.get("kwargs"):
        problem = checks.model_kwargs_problem(values["name"], values["kwargs"])
        if problem:
            raise ConfigError(f"{_source(where, _join(key, 'kwargs'), overridden)} {_join(key, 'kwargs')}: {problem}")
    return cls(**values)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else str(name)


def _source(where: str, dotted: str, overridden: frozenset) -> str:
    """The file and profile, and the --set that gave this key, a section above it or a key inside it its value."""
    for item in sorted(overridden):
        if item == dotted or dotted.startswith(item + ".") or item.startswith(dotted + "."):
            return f"{where} (--set {item})"
    return where


def _coerce(hint, value, where: str, key: str, overridden: frozenset = frozenset(), nullable: bool = False):
    source = _source(where, key, overridden)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for arg in options:
            try:
                return _coerce(arg, value, where, key, overridden, nullable=type(None) in args)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where, key, overridden)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source} {key}: {value!r} is not one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source} {key}: expected a list, got {value!r}")
        return [_coerce(args[0], v, where, key, overridden) for v in value] if args else value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source} {key}: expected a mapping, got {value!r}")
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
    expected = getattr(hint, "__name__", str(hint)) + (" or null" if nullable else "")
    raise ConfigError(f"{source} {key}: expected {expected}, got {value!r}")
