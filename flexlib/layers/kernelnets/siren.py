"""SIREN kernel network (Sitzmann et al. 2020), the kernel parameterization of CKConv (Romero et al. 2021)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import checks
from .mfn import _check_sizes


class SIREN(nn.Module):
    """x → sin(ω₀(W₁x + b₁)) → … → W_L h + b_L.

    `num_layers` counts all linear layers, as in CKConv (so the default 3 layers are D→h, h→h, h→out, with two
    sine activations). Init of Sitzmann et al.: first layer U(-1/D, 1/D), later layers U(-√(6/h)/ω₀, √(6/h)/ω₀).
    """

    def __init__(self, data_dim: int, out_features: int, hidden_features: int = 32, num_layers: int = 3,
                 omega_0: float = 30.0):
        _check_sizes(type(self).__name__, data_dim, out_features, hidden_features, num_layers)
        if num_layers < 2:
            raise ValueError(f"SIREN: num_layers counts all linear layers and must be ≥ 2, got {num_layers}")
        if not omega_0 > 0:
            raise ValueError(f"SIREN: omega_0 must be positive, got {omega_0!r}")
        super().__init__()
        self.data_dim = data_dim
        self.out_features = out_features
        self.omega_0 = omega_0
        sizes = [data_dim] + [hidden_features] * (num_layers - 1)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.output_linear = nn.Linear(hidden_features, out_features)
        with torch.no_grad():
            self.hidden[0].weight.uniform_(-1.0 / data_dim, 1.0 / data_dim)
            bound = math.sqrt(6.0 / hidden_features) / omega_0
            for layer in [*self.hidden[1:], self.output_linear]:
                layer.weight.uniform_(-bound, bound)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        checks.coordinates("SIREN", coords, self.data_dim)
        h = coords
        for layer in self.hidden:
            h = torch.sin(self.omega_0 * layer(h))
        return self.output_linear(h)
