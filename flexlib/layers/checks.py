"""Argument checks shared by the layers: each error names the owner, the argument, the value and what is allowed."""
from __future__ import annotations

import math
import numbers

import torch


def positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{owner}: {name} must be an integer >= 0, got {value!r}")
    return int(value)


def one_of(owner: str, name: str, value, allowed) -> None:
    """`value` must be one of `allowed` by equality *and* type (so 2.0 or True is not the int 2 or 1)."""
    if not any(type(value) is type(a) and value == a for a in allowed):
        raise ValueError(f"{owner}: {name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def real(owner: str, name: str, value, low: float | None = None, high: float | None = None,
         low_open: bool = True, high_open: bool = True, allowed: str | None = None) -> float:
    """A finite real number (not a bool or a string) in the interval given by low/high (open unless told);
    `allowed` replaces the message's description of what is allowed."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = (f"{'(' if low_open else '['}{low if low is not None else '-inf'}, "
                  f"{high if high is not None else 'inf'}{')' if high_open else ']'}")
        allowed = allowed or f"be a finite real number in {bounds}"
        raise ValueError(f"{owner}: {name} must {allowed}, got {value!r}")
    return float(value)


def coordinates(owner: str, coords, data_dim: int) -> None:
    """Kernel-network / mask input: a floating-point tensor of shape (N, D)."""
    if not isinstance(coords, torch.Tensor):
        raise TypeError(f"{owner}: coords must be a torch.Tensor of shape (N, {data_dim}), got "
                        f"{type(coords).__name__}")
    if coords.dim() != 2 or coords.shape[-1] != data_dim:
        raise ValueError(f"{owner}: coords must have shape (N, {data_dim}), got {tuple(coords.shape)}")
    if not coords.is_floating_point():
        raise TypeError(f"{owner}: coords must be floating point (positions in [-1, 1]), got dtype {coords.dtype};"
                        f" convert with coords.float()")
