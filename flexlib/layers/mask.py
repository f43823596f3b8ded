"""The learnable anisotropic Gaussian mask of FlexConv (eq. 1) and the crop it implies.

w_gauss(x; μ, σ²) = Π_d exp(-½ (x_d - μ_d)² / σ_d²)                                   (eq. 1)

Deviation from the official code: σ² is guarded as σ² + ε (`eps`, default ε = 1e-8, the CCNN fix), so that the
gradient stays finite as σ → 0; the official FlexConv divides by σ² directly and produces inf gradients. ε = 0 gives
the authors' arithmetic exactly (their training trajectories are reproduced with it: tests/test_authors_trajectory.py).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import checks

DEFAULT_EPS = 1e-8   # ε of σ² + ε in eq. 1 (the finite-gradient fix); 0 = the authors' arithmetic

PAPER_INIT_VARIANCE = 0.125  # App. D.1: σ_X², σ_Y² = 0.125
OFFICIAL_INIT_SIGMA = 0.075  # rjbruin/flexconv commands: mask.init_value=0.075, stored as σ itself


def gaussian_mask(coords: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
                  eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Eq. 1 for D dims with σ² guarded as σ² + ε: coords (N, D), mu and sigma (..., D) → (..., N) (batched over
    the leading dims of mu and sigma, e.g. (M, 1, D) for M masks).

    Written with products, not `** 2`: the backward of a square costs more operations (18 more per FlexNet-16
    training step, benchmarks/bench_ops.py)."""
    d = coords - mu
    return torch.exp(-0.5 * (d * d / (sigma * sigma + eps)).sum(dim=-1))


def rotate(coords: torch.Tensor, theta: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Express 2-D coordinates in the frame of a mask rotated by θ around its centre μ (App. D.3)."""
    c, s = torch.cos(theta), torch.sin(theta)
    d = coords - mu
    x = c * d[:, 0] + s * d[:, 1]
    y = -s * d[:, 0] + c * d[:, 1]
    return torch.stack([x, y], dim=-1) + mu


def threshold_radius(threshold: float) -> float:
    """Distance in units of σ at which a 1-D Gaussian falls to `threshold`: sqrt(-2 ln t)."""
    return math.sqrt(-2.0 * math.log(threshold))


def support_interval(mean, sigma, threshold: float, theta: float | None = None,
                     eps: float = DEFAULT_EPS) -> tuple[list[float], list[float]]:
    """[low, high] per dim where eq. 1 (with σ² + ε) is ≥ `threshold`: μ ± √(σ² + ε)·sqrt(-2 ln t) (the axis-aligned
    box around the ellipse for a 2-D mask rotated by θ), clipped to [-1, 1]. Plain floats in and out: the crop is
    decided on the host, from one read of the mask's parameters. A NaN stays NaN (flexlib.layers.grids.crop_range
    refuses it: the mask has diverged)."""
    radius = threshold_radius(threshold)
    half = [math.sqrt(s * s + eps) * radius for s in sigma]
    if theta is not None:
        c, s = abs(math.cos(theta)), abs(math.sin(theta))
        half = [math.hypot(half[0] * c, half[1] * s), math.hypot(half[0] * s, half[1] * c)]

    def clip(v: float) -> float:
        return v if math.isnan(v) else min(1.0, max(-1.0, v))

    return [clip(m - h) for m, h in zip(mean, half)], [clip(m + h) for m, h in zip(mean, half)]


class GaussianMask(nn.Module):
    """Learnable anisotropic Gaussian mask w_gauss (eq. 1) over coordinates in [-1, 1]^D.

    Args:
        data_dim: D, the number of spatial dimensions (1, 2 or 3).
        init_variance: initial σ² per dimension (the paper's 0.125, App. D.1).
        init_sigma: initial σ (overrides `init_variance`; the official code's value is 0.075).
        init_mean: "center" (μ = 0), "last" (μ = +1, the most recent step of a causal kernel, §4.2),
            "first" (μ = -1, the far past, §5), or a sequence of D floats.
        rotated: learn a rotation angle θ of the 2-D mask (App. D.3).
        eps: ε in σ² + ε, the denominator of eq. 1 and of the crop's roots (default 1e-8: finite gradients as
            σ → 0; 0: the authors' arithmetic, bit for bit).

    `mean` and `sigma` return μ and σ of eq. 1 as tensors of shape (D,).
    """

    def __init__(self, data_dim: int, init_variance: float = PAPER_INIT_VARIANCE, init_sigma: float | None = None,
                 init_mean="center", rotated: bool = False, eps: float = DEFAULT_EPS):
        super().__init__()
        checks.one_of("GaussianMask", "data_dim", data_dim, (1, 2, 3))
        if rotated and data_dim != 2:
            raise ValueError(f"GaussianMask: rotated=True needs data_dim=2, got data_dim={data_dim}")
        if init_sigma is not None:
            sigma0 = checks.real("GaussianMask", "init_sigma", init_sigma, low=0.0)
        else:
            sigma0 = math.sqrt(checks.real("GaussianMask", "init_variance", init_variance, low=0.0))
        self.data_dim = data_dim
        self.eps = checks.real("GaussianMask", "eps", eps, low=0.0, low_open=False)
        self.mean_param = nn.Parameter(_initial_mean(init_mean, data_dim))
        self.sigma_param = nn.Parameter(torch.full((data_dim,), float(sigma0)))
        self.theta = nn.Parameter(torch.zeros(())) if rotated else None

    @property
    def mean(self) -> torch.Tensor:
        return self.mean_param

    @property
    def sigma(self) -> torch.Tensor:
        return self.sigma_param.abs()

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        checks.coordinates("GaussianMask", coords, self.data_dim)
        if self.theta is not None:
            coords = rotate(coords, self.theta, self.mean_param)
        return gaussian_mask(coords, self.mean_param, self.sigma_param, self.eps)

    def raw_parameters(self) -> list[torch.Tensor]:
        """μ (D,), the stored σ (D,; its sign is irrelevant) and, if rotated, θ as a (1,) view."""
        return [self.mean_param, self.sigma_param] + ([self.theta.view(1)] if self.theta is not None else [])

    @torch.no_grad()
    def support(self, threshold: float) -> tuple[list[float], list[float]]:
        """Per-dimension interval [low, high] where the mask is ≥ `threshold` (the axis-aligned box around the
        ellipse for a rotated mask), clipped to [-1, 1], read from the device in one transfer."""
        values = torch.cat(self.raw_parameters()).tolist()
        d = self.data_dim
        theta = values[2 * d] if self.theta is not None else None
        return support_interval(values[:d], values[d:2 * d], threshold, theta, self.eps)

    def extra_repr(self) -> str:
        mu = [round(v, 4) for v in self.mean.tolist()]
        sigma = [round(v, 4) for v in self.sigma.tolist()]
        eps = f", eps={self.eps:g}" if self.eps != DEFAULT_EPS else ""
        return f"data_dim={self.data_dim}, mean={mu}, sigma={sigma}, rotated={self.theta is not None}{eps}"


def _initial_mean(init_mean, data_dim: int) -> torch.Tensor:
    named = {"center": 0.0, "last": 1.0, "first": -1.0}
    if isinstance(init_mean, str):
        if init_mean not in named:
            raise ValueError(f"GaussianMask: init_mean must be one of {sorted(named)} or {data_dim} floats, "
                             f"got {init_mean!r}")
        return torch.full((data_dim,), named[init_mean])
    mean = torch.as_tensor(init_mean, dtype=torch.get_default_dtype()).flatten()
    if mean.numel() != data_dim:
        raise ValueError(f"GaussianMask: init_mean needs {data_dim} values, got {mean.numel()}")
    return mean.clone()
