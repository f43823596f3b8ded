"""Filter layers g(x; θ⁽ˡ⁾) of Multiplicative Filter Networks (eq. 2–8)."""
from __future__ import annotations

import math

import torch
from torch import nn

GAMMA_ALPHA = 6.0  # α of the Gamma(α·l⁻¹, β) envelope init (Fathony et al. 2021; official code)
GAMMA_BETA = 1.0   # β


def gamma_concentration(init: str, layer: int, num_filters: int, alpha: float) -> float:
    """Concentration of the Gamma prior over γ at filter layer `layer` (1-based).

    "fathony": α / L at every layer (Fathony et al. 2021).  "layerwise": α / l at the l-th layer (§3.2, the
    MAGNet initialization, which gives more diverse envelope sizes)."""
    if init == "fathony":
        return alpha / num_filters
    if init == "layerwise":
        return alpha / layer
    raise ValueError(f"init must be 'layerwise' or 'fathony', got {init!r}")


def sine_frequencies(data_dim: int, hidden: int, scale: torch.Tensor | float) -> nn.Linear:
    """The affine map W_g x + b_g inside the sine: weights U(-1/√D, 1/√D)·scale, bias U(-π, π)."""
    linear = nn.Linear(data_dim, hidden)
    with torch.no_grad():
        bound = 1.0 / math.sqrt(data_dim)
        linear.weight.uniform_(-bound, bound).mul_(scale)
        linear.bias.uniform_(-math.pi, math.pi)
    return linear


class GaborFilter(nn.Module):
    """Gabor filter g([x, y]; θ) = exp(-½ Σ_d (γ_d (x_d - μ_d))²) · sin(W_g x + b_g).

    anisotropic=True is eq. 7 (MAGNet: a γ and μ per dimension and unit); anisotropic=False is eq. 5 (isotropic
    Gabor MFN: one γ per unit shared by all dimensions; μ stays per dimension as in Fathony et al.).

    Init: γ ~ Gamma(concentration, β) (see `gamma_concentration`), μ ~ U(-mu_range, mu_range), W_g scaled by
    γ · input_scale / √L so the L filters together span frequencies up to ~input_scale (Fathony et al.; the
    official code), b_g ~ U(-π, π).
    """

    def __init__(self, data_dim: int, hidden: int, layer: int, num_filters: int, anisotropic: bool = True,
                 init: str = "layerwise", input_scale: float = 25.6, alpha: float = GAMMA_ALPHA,
                 beta: float = GAMMA_BETA, mu_range: float = 1.0):
        super().__init__()
        concentration = gamma_concentration(init, layer, num_filters, alpha)
        gamma_dims = data_dim if anisotropic else 1
        gamma = torch.distributions.Gamma(concentration, beta).sample((hidden, gamma_dims))
        self.gamma = nn.Parameter(gamma)
        self.mu = nn.Parameter(torch.empty(hidden, data_dim).uniform_(-mu_range, mu_range))
        self.linear = sine_frequencies(data_dim, hidden, gamma * input_scale / math.sqrt(num_filters))
        self.anisotropic = anisotropic

    def envelope(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.gamma * (x.unsqueeze(-2) - self.mu)) ** 2  # (N, hidden, D)
        return torch.exp(-0.5 * z.sum(dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.envelope(x) * torch.sin(self.linear(x))


class FourierFilter(nn.Module):
    """Fourier filter g(x; θ) = sin(W_g x + b_g) of the Fourier MFN (Fathony et al. 2021)."""

    def __init__(self, data_dim: int, hidden: int, num_filters: int, input_scale: float = 25.6):
        super().__init__()
        self.linear = sine_frequencies(data_dim, hidden, input_scale / math.sqrt(num_filters))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.linear(x))
