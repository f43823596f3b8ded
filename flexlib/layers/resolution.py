"""Resolution transfer (eq. 9): f_r₂ * ψ_r₂ ≈ (r₁/r₂)^D (f_r₁ * ψ_r₁).

A FlexConv's kernel size follows its input, so at a new resolution the continuous kernel is already sampled
on the denser grid; what remains is the factor (r₁/r₂)^D that keeps the response's scale."""
from __future__ import annotations

import math
import numbers

from torch import nn


def _as_tuple(res, dims: int, name: str) -> tuple[float, ...]:
    """A resolution: one finite positive number, or one per dim (not a string, a bool, NaN or inf)."""
    def ok(r):
        return isinstance(r, numbers.Real) and not isinstance(r, bool) and math.isfinite(r) and r > 0

    values = (res,) * dims if ok(res) else tuple(res) if isinstance(res, (tuple, list)) else None
    if values is None or len(values) != dims or not all(ok(r) for r in values):
        raise ValueError(f"retarget: {name} must be a finite positive number or {dims} of them (the sampling "
                         f"resolution, e.g. 32 for 32×32), got {res!r}")
    return tuple(float(r) for r in values)


def sampling_rate_factor(source_res, target_res, data_dim: int) -> float:
    """(r₁/r₂)^D of eq. 9, per dimension for anisotropic changes: Π_d r₁,d / r₂,d."""
    src = _as_tuple(source_res, data_dim, "source_res")
    tgt = _as_tuple(target_res, data_dim, "target_res")
    factor = 1.0
    for s, t in zip(src, tgt):
        factor *= s / t
    return factor


def retarget(model: nn.Module, source_res, target_res) -> nn.Module:
    """Prepare every FlexConv/CKConv in `model`, trained at `source_res`, to run at `target_res` (eq. 9).

    Factors compose over successive calls. f_Nyq(k) of the alias regularizer follows the kernel size of the
    latest forward pass, so fine-tuning at the target resolution regularizes against the target's Nyquist
    frequency. Returns the model."""
    from .flexconv import FlexConv
    convs = [m for m in model.modules() if isinstance(m, FlexConv)]
    if not convs:
        raise ValueError("retarget: the model has no FlexConv or CKConv layer")
    factors = [sampling_rate_factor(source_res, target_res, conv.data_dim) for conv in convs]  # all checked first
    for conv, factor in zip(convs, factors):
        conv.sampling_rate_norm *= factor
        conv.last_kernel_size = None
    return model
