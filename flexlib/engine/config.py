"""Typed experiment configs loaded from the YAML files in ``params/``, and what every value may be.

A params file has one mapping per profile. ``full`` holds the paper's values (App. D.2); every other profile
(``quick``) is deep-merged over ``full``, so it lists only what differs. ``--set a.b=value`` overrides follow.
Unknown keys are refused with the closest valid key as a suggestion, duplicate keys and YAML syntax errors with
file:line, and every value is checked against its rule: `RULES[class name][field]` for the engine's configs, or a
rule in the field's metadata (``field(metadata={"check": rule})``) for configs defined elsewhere. A rule returns None
when the value is allowed, else what is allowed, for the message
"<file> [<profile>] train.epochs: 0 is not allowed; expected an integer >= 1".
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import yaml

from ..data import DataConfig


# -- the configs -------------------------------------------------------------------------------------------------------
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
    divergence_factor: float | None = 100.0   # stop when cross-entropy > this x ln(classes) (flexlib.engine.step)
    top5_accuracy: bool | None = None        # record test top-5 accuracy (Table 7); None: with 5 classes or more
    # before each resolution change and at the end, go back to the weights of the stage's best epoch (by validation
    # accuracy where the data has a validation split, else test accuracy), as the authors' trainer does
    restore_best: bool = False
    # deterministic algorithms (torch.use_deterministic_algorithms) and, with them, a convolution path chosen by the
    # cost model alone (never timed): the same numbers on every run and after a resume; false for speed on GPUs
    deterministic: bool = True
    # torch.compile the model (flexlib.engine.distributed): compile time and graphs in the log, metrics and metadata
    compile: bool = False
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


def load_config(path: str | Path, profile: str = "full", overrides: list[str] | dict | None = None,
                cls: type = ExperimentConfig):
    """Read ``path``, merge ``profile`` over ``full``, apply ``key=value`` overrides, build ``cls``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        raw = read_yaml(path)
    except YAMLError as err:
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
    for item in override_items(overrides):
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


def override_items(overrides) -> list[str]:
    """`key=value` strings from a list of them or from a mapping {"train.epochs": 6, "data.train_size": None}
    (a notebook's `overrides` parameter; a key ending in ":" replaces a mapping whole, as `key:=value` does)."""
    if overrides is None:
        return []
    if isinstance(overrides, dict):
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    if isinstance(overrides, (list, tuple)) and all(isinstance(item, str) for item in overrides):
        return list(overrides)
    raise ConfigError(f"overrides must be a mapping {{section.key: value}} or a list of 'section.key=value' strings, "
                      f"got {overrides!r}")


def parse_override(item: str) -> dict:
    """``"train.epochs=3"`` -> ``{"train": {"epochs": 3}}``; the value is parsed as YAML. A mapping value is merged
    into the profile's (``model.kwargs={width: 8}`` keeps the other kwargs); ``key:=value`` replaces it whole."""
    key, sep, value = item.partition("=")
    key = key.strip().removesuffix(":")
    if not sep or not key or "" in key.split("."):
        raise ConfigError(f"override {item!r} must look like section.key=value, e.g. train.epochs=3")
    try:
        out: Any = parse_yaml(value, f"--set {key}")
    except YAMLError as err:
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
        problem = check_value(fields[name], cls.__name__, name, values[name])
        if problem:
            raise ConfigError(f"{source} {dotted}: {values[name]!r} is not allowed; expected {problem}")
    if cls is ModelConfig and values.get("kwargs"):
        problem = model_kwargs_problem(values["name"], values["kwargs"])
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


# -- YAML --------------------------------------------------------------------------------------------------------------
class YAMLError(ValueError):
    """A YAML text that cannot be read as a config; the message starts with file:line."""


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key repeated in one mapping (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, typing.Hashable):
                continue                                   # SafeLoader refuses it with its own message
            if key in seen:
                raise YAMLError(f"{key_node.start_mark.name}:{line}: duplicate key {key!r} (first on line "
                                f"{seen[key]}); each key may appear once per mapping")
            seen[key] = line
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str) -> Any:
    """The value of YAML ``text``; ``source`` names it in errors (a file path, or e.g. "--set train.epochs")."""
    loader = _StrictLoader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = " ".join(p for p in (err.context, err.problem) if p)
        raise YAMLError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as err:
        raise YAMLError(f"{source}: YAML error: {' '.join(str(err).split())}") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise YAMLError(f"{path}: not a text file (not UTF-8); expected a YAML params file") from None
    return parse_yaml(text, str(path))


# -- what every value may be -------------------------------------------------------------------------------------------
Rule = Callable[[Any], "str | None"]


def at_least(low: int, or_null: str | None = None) -> Rule:
    allowed = f"an integer >= {low}" + (f" or null ({or_null})" if or_null else "")
    return lambda v: None if (v is None and or_null) or (isinstance(v, int) and v >= low) else allowed


def between(low: int, high: int, why: str, or_null: str | None = None) -> Rule:
    """An integer in low..high; ``why`` names the limit in the message."""
    allowed = f"an integer {low}..{high} ({why})" + (f" or null ({or_null})" if or_null else "")

    def rule(v):
        if v is None and or_null:
            return None
        return None if isinstance(v, int) and not isinstance(v, bool) and low <= v <= high else allowed
    return rule


# Limits checked before anything is allocated. Seeds go to torch (64 bit), torch.Generators and the
# DistributedSampler (seed + epoch as a signed 64-bit int) and numpy (32 bit): 0..2**32 - 1 works in all of them.
MAX_SEED = 2**32 - 1
MAX_RESOLUTION = 1024          # px: 10x the largest images of the paper (STL-10, 96 px)
MAX_BATCH_SIZE = 65536
seed_range = between(0, MAX_SEED, "2**32 - 1, the largest seed that numpy, torch and the DistributedSampler all accept")
resolution_range = between(1, MAX_RESOLUTION, "flexlib.engine.config.MAX_RESOLUTION", "native size")
batch_size_range = between(1, MAX_BATCH_SIZE, "flexlib.engine.config.MAX_BATCH_SIZE")


def number(low: float, strict: bool, or_null: str | None = None) -> Rule:
    allowed = f"a finite number {'>' if strict else '>='} {low:g}" + (f" or null ({or_null})" if or_null else "")

    def rule(v):
        if v is None and or_null:
            return None
        ok = isinstance(v, (int, float)) and math.isfinite(v) and (v > low if strict else v >= low)
        return None if ok else allowed
    return rule


def one_of(names: Callable[[], list[str]], what: str) -> Rule:
    def rule(v):
        valid = names()
        if v in valid:
            return None
        close = difflib.get_close_matches(str(v), valid, n=1)
        return f"one of the {what}" + (f" (did you mean {close[0]!r}?)" if close else "") + f": {', '.join(valid)}"
    return rule


def every(rule: Rule, non_empty: bool = True) -> Rule:
    def check(values):
        for v in values:
            if (problem := rule(v)) is not None:
                return f"a list whose items are each {problem}; {v!r} is not"
        return "a non-empty list" if non_empty and not values else None
    return check


def device(v) -> str | None:
    allowed = "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"
    if v == "auto":
        return None
    import torch
    try:
        return None if torch.device(v).type in ("cpu", "cuda", "mps") else allowed
    except (RuntimeError, TypeError):
        return allowed


def non_empty(v) -> str | None:
    return None if v else "a non-empty string"


def _datasets() -> list[str]:
    from ..data import DATASETS
    return sorted(DATASETS)


def _models() -> list[str]:
    from ..models import available
    return available()


RULES: dict[str, dict[str, Rule]] = {
    "DataConfig": {"dataset": one_of(_datasets, "known datasets"),
                   "root": lambda v: None if v is None else non_empty(v),
                   "resolution": resolution_range, "train_size": at_least(1, "all examples"),
                   "test_size": at_least(1, "all examples"), "num_workers": at_least(0)},
    "ModelConfig": {"name": one_of(_models, "models")},
    "OptimConfig": {"lr": number(0, strict=True), "mask_lr_factor": number(0, strict=False),
                    "weight_decay": number(0, strict=False), "warmup_epochs": at_least(0)},
    "TrainConfig": {"epochs": at_least(1), "batch_size": batch_size_range,
                    "eval_batch_size": between(1, MAX_BATCH_SIZE, "flexlib.engine.config.MAX_BATCH_SIZE", "batch_size"),
                    "seed": seed_range, "device": device, "alias_lambda": number(0, strict=False),
                    "max_steps_per_epoch": at_least(1, "the whole epoch"), "out_dir": non_empty,
                    "divergence_factor": number(1, strict=True, or_null="no loss-size rule")},
    "ResolutionConfig": {"source": between(1, MAX_RESOLUTION, "flexlib.engine.config.MAX_RESOLUTION"),
                         "target": between(1, MAX_RESOLUTION, "flexlib.engine.config.MAX_RESOLUTION"),
                         "finetune_epochs": at_least(0)},
}


def check_value(f: dataclasses.Field, cls_name: str, key: str, value: Any) -> str | None:
    """What `value` of field `f` of class `cls_name` must be, or None when it is allowed."""
    rule = f.metadata.get("check") or RULES.get(cls_name, {}).get(key)
    return None if rule is None else (rule(value) or None)


# --- model.kwargs: the fields of the model's config dataclass (flexlib.models), names and simple types -------------

def _type_ok(hint, value) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(a, value) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list):
        return isinstance(value, (tuple, list))
    return True                                              # nested configs: the model library checks them


def _type_name(hint) -> str:
    return str(hint).replace("typing.", "") if typing.get_args(hint) else getattr(hint, "__name__", str(hint))


def model_kwargs_problem(name: str, kwargs: dict) -> str | None:
    """Why `flexlib.models.create(name, **kwargs)` would refuse kwargs (unknown key, wrong type or value), or None."""
    from ..models import model_config
    from ..models.conv import ConvConfig
    base = model_config(name)
    hints = {**typing.get_type_hints(ConvConfig), **typing.get_type_hints(type(base))}
    valid = sorted(set(hints) - {"in_channels", "num_classes"} | {"mask"})   # those two come from the data
    for key, value in kwargs.items():
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            return (f"unknown key {key!r} for {name}" + (f"; did you mean {close[0]!r}?" if close else ".")
                    + f" Valid keys: {', '.join(valid)}")
        hint = bool if key == "mask" else hints[key]
        if not (is_dataclass(hint) or _type_ok(hint, value)):
            return f"{key}: expected {_type_name(hint)}, got {value!r}"
    try:
        model_config(name, **kwargs)
    except (ValueError, TypeError) as err:
        return " ".join(str(err).split())
    return None
