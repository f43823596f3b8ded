"""Multiplicative Filter Networks (eq. 2–4) and their instances: MAGNet, Gabor MFN, Fourier MFN."""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import checks
from .filters import GAMMA_ALPHA, GAMMA_BETA, FourierFilter, GaborFilter


def _check_sizes(name: str, data_dim: int, out_features: int, hidden_features: int, num_layers: int) -> None:
    checks.one_of(name, "data_dim", data_dim, (1, 2, 3))
    for arg, value in (("out_features", out_features), ("hidden_features", hidden_features),
                       ("num_layers", num_layers)):
        checks.positive_int(name, arg, value)


class MFN(nn.Module):
    """h⁽¹⁾ = g⁽¹⁾(x);  h⁽ˡ⁾ = (W⁽ˡ⁾ h⁽ˡ⁻¹⁾ + b⁽ˡ⁾) · g⁽ˡ⁾(x);  ψ(x) = W⁽ᴸ⁾ h + b⁽ᴸ⁾   (eq. 2–4).

    `num_layers` counts the hidden linear layers W⁽ˡ⁾ (the official code's `no_layers`), so the network has
    num_layers + 1 filters; the paper's "3-layer MAGNet" has 4 Gabor filters, 3 hidden linears and an output
    linear. Hidden linears are initialised U(-√(1/N_hid), √(1/N_hid)) as in Fathony et al.
    """

    def __init__(self, filters: list[nn.Module], data_dim: int, out_features: int, hidden_features: int):
        super().__init__()
        self.data_dim = data_dim
        self.out_features = out_features
        self.filters = nn.ModuleList(filters)
        self.linears = nn.ModuleList(nn.Linear(hidden_features, hidden_features) for _ in filters[1:])
        bound = math.sqrt(1.0 / hidden_features)
        with torch.no_grad():
            for linear in self.linears:
                linear.weight.uniform_(-bound, bound)
        self.output_linear = nn.Linear(hidden_features, out_features)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        checks.coordinates(type(self).__name__, coords, self.data_dim)
        h = self.filters[0](coords)
        for linear, g in zip(self.linears, self.filters[1:]):
            h = linear(h) * g(coords)
        return self.output_linear(h)


class MAGNet(MFN):
    """Multiplicative Anisotropic Gabor Network (§3.2, eq. 7–8).

    Defaults are the paper's: 3 layers, 32 hidden units, γ ~ Gamma(α·l⁻¹, β) at the l-th filter ("layerwise",
    α = 6, β = 1), sine weights scaled by 25.6 (App. D.1), sine biases U(-π, π), Gabor centres μ ~ U(±mu_range)
    (1: the whole kernel; the authors' FlexConv uses 1.667·σ₀ of its mask, see FlexConv's mask_init).
    init="fathony" gives the Gamma(α·L⁻¹, β) initialization of Fathony et al. (Table 5's "MAGNet w/o improved
    init").
    """

    def __init__(self, data_dim: int, out_features: int, hidden_features: int = 32, num_layers: int = 3,
                 init: str = "layerwise", input_scale: float = 25.6, alpha: float = GAMMA_ALPHA,
                 beta: float = GAMMA_BETA, mu_range: float = 1.0, anisotropic: bool = True):
        _check_sizes(type(self).__name__, data_dim, out_features, hidden_features, num_layers)
        n = num_layers + 1
        filters = [GaborFilter(data_dim, hidden_features, layer=l, num_filters=n, anisotropic=anisotropic, init=init,
                               input_scale=input_scale, alpha=alpha, beta=beta, mu_range=mu_range)
                   for l in range(1, n + 1)]
        super().__init__(filters, data_dim, out_features, hidden_features)


class GaborMFN(MAGNet):
    """Multiplicative Gabor Network with isotropic Gabor filters (eq. 5–6; Fathony et al. 2021).

    init="fathony" (default) is Fathony et al.'s Gamma(α·L⁻¹, β); init="layerwise" is the improved per-layer
    initialization of §3.2 (Table 5's "Gabor MFN w/ improved init")."""

    def __init__(self, data_dim: int, out_features: int, hidden_features: int = 32, num_layers: int = 3,
                 init: str = "fathony", **kwargs):
        super().__init__(data_dim, out_features, hidden_features, num_layers, init=init, anisotropic=False, **kwargs)


class FourierMFN(MFN):
    """Fourier MFN (Fathony et al. 2021): filters sin(W_g x + b_g) without envelope."""

    def __init__(self, data_dim: int, out_features: int, hidden_features: int = 32, num_layers: int = 3,
                 input_scale: float = 25.6):
        _check_sizes(type(self).__name__, data_dim, out_features, hidden_features, num_layers)
        n = num_layers + 1
        filters = [FourierFilter(data_dim, hidden_features, n, input_scale) for _ in range(n)]
        super().__init__(filters, data_dim, out_features, hidden_features)
