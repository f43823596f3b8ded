"""What every config value may be. `RULES[class name][field]` is applied by `config.from_dict` to each value it reads
(params file, `--set`, a run's config.yaml, or a config built in Python and passed to `run_experiment`).

A rule returns None when the value is allowed, else what is allowed, for the message
"<file> [<profile>] train.epochs: 0 is not allowed; expected an integer >= 1".
"""
from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import is_dataclass
from typing import Any, Callable

Rule = Callable[[Any], "str | None"]


def at_least(low: int, or_null: str | None = None) -> Rule:
    allowed = f"an integer >= {low}" + (f" or null ({or_null})" if or_null else "")
    return lambda v: None if (v is None and or_null) or (isinstance(v, int) and v >= low) else allowed


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


def _kodak_rows() -> list[str]:
    from ..models.kodak import KODAK_NETS
    return list(KODAK_NETS)


_IMAGE = lambda v: None if isinstance(v, int) and 1 <= v <= 24 else "an integer 1..24 (kodim01..kodim24)"

RULES: dict[str, dict[str, Rule]] = {
    "DataConfig": {"dataset": one_of(_datasets, "known datasets"),
                   "root": lambda v: None if v is None else non_empty(v),
                   "resolution": at_least(1, "native size"), "train_size": at_least(1, "all examples"),
                   "test_size": at_least(1, "all examples"), "num_workers": at_least(0)},
    "ModelConfig": {"name": one_of(_models, "models")},
    "OptimConfig": {"lr": number(0, strict=True), "mask_lr_factor": number(0, strict=False),
                    "weight_decay": number(0, strict=False), "warmup_epochs": at_least(0)},
    "TrainConfig": {"epochs": at_least(1), "batch_size": at_least(1), "eval_batch_size": at_least(1, "batch_size"),
                    "seed": at_least(0), "device": device, "alias_lambda": number(0, strict=False),
                    "max_steps_per_epoch": at_least(1, "the whole epoch"), "out_dir": non_empty,
                    "divergence_factor": number(1, strict=True, or_null="no loss-size rule")},
    "ResolutionConfig": {"source": at_least(1), "target": at_least(1), "finetune_epochs": at_least(0)},
    "FitConfig": {"rows": every(one_of(_kodak_rows, "Table 5 rows")), "images": every(_IMAGE),
                  "iterations": at_least(1), "lr": number(0, strict=True), "siren_lr": number(0, strict=True),
                  "downsample": at_least(1), "seed": at_least(0), "device": device, "out_dir": non_empty},
}


def check_value(cls_name: str, key: str, value: Any) -> str | None:
    rule = RULES.get(cls_name, {}).get(key)
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
