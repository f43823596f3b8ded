"""The N-Jet layer (Pintea et al. 2021, "Resolution learning in deep convolutional networks using scale-space
theory"): a kernel that is a learned combination of Gaussian derivatives up to order N at one learnable scale σ,
with its size tied to σ. FlexConv compares against it in Fig. 4 (bandwidth) and Tables 3, 4, 6 and 8.

g_n(x; σ) = dⁿ/dxⁿ G(x; σ) = (-1)ⁿ σ⁻ⁿ Heₙ(x/σ) G(x; σ),   G(x; σ) = exp(-x²/2σ²) / (√(2π) σ)

with Heₙ the probabilists' Hermite polynomials. The basis combines the scale-normalized derivatives σⁿ g_n, as the
N-Jet code does; in 2-D the separable products σⁿ g_n(x) σᵐ g_m(y) with n + m ≤ N: (N+1)(N+2)/2 functions.
Positions are in pixels, centred on the kernel.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.crops import read_crops


def hermite_e(u: torch.Tensor, order: int) -> torch.Tensor:
    """Probabilists' Hermite polynomials He_0..He_order at u: (order + 1, *u.shape).
    He_{n+1}(u) = u He_n(u) - n He_{n-1}(u)."""
    polys = [torch.ones_like(u), u]
    for n in range(1, order):
        polys.append(u * polys[n] - n * polys[n - 1])
    return torch.stack(polys[: order + 1])


def gaussian_derivatives(x: torch.Tensor, sigma: torch.Tensor, order: int) -> torch.Tensor:
    """g_0..g_order (the Gaussian and its derivatives, continuous normalisation) at positions x:
    (order + 1, len(x))."""
    u = x / sigma
    gauss = torch.exp(-0.5 * u**2) / (math.sqrt(2 * math.pi) * sigma)
    n = torch.arange(order + 1, device=x.device, dtype=x.dtype).unsqueeze(-1)
    sign = 1.0 - 2.0 * (n % 2)      # (-1)ⁿ; not `(-1.0) ** n`, which torch.fx prints as -1.0 ** n (= -1)
    return sign * sigma ** (-n) * hermite_e(u, order) * gauss


def scale_normalized_derivatives(x: torch.Tensor, sigma: torch.Tensor, order: int) -> torch.Tensor:
    """σⁿ g_n(x; σ) for n = 0..order: the scale-normalized Gaussian derivatives (Lindeberg) that the N-Jet code
    (Pintea et al. 2021, `gaussian_basis_filters`: `basis_x = sigma**i * get_basis(...)`) combines. Without the σⁿ
    an order-n basis function shrinks like σ⁻ⁿ, and high orders at σ of a few pixels become too small to learn."""
    n = torch.arange(order + 1, device=x.device, dtype=x.dtype).unsqueeze(-1)
    return sigma ** n * gaussian_derivatives(x, sigma, order)


def basis_orders(data_dim: int, order: int) -> list[tuple[int, ...]]:
    """Derivative orders of the basis: (n,) for n ≤ N in 1-D; (n, m) with n + m ≤ N in 2-D."""
    if data_dim == 1:
        return [(n,) for n in range(order + 1)]
    return [(n, t - n) for t in range(order + 1) for n in range(t, -1, -1)]


def njet_kernel_size(sigma: float, truncation: float) -> int:
    """Kernel size tied to the scale: 2·ceil(truncation·σ) + 1."""
    return 2 * math.ceil(truncation * sigma) + 1


class NJetConv(nn.Module):
    """N-Jet convolution: kernel[o, i] = Σ_b α[o, i, b] · basis_b(·; σ), with a learnable σ shared by the layer.

    Args:
        order: N, the highest derivative order (the official FlexNet-N-Jet command uses 4; see docs/models.md).
        init_sigma: σ at initialization, in pixels.
        truncation: the kernel covers ±truncation·σ (size 2·ceil(truncation·σ)+1).
        stride: output stride ('same' padding).
    The kernel is never larger than the input needs (its size is capped at the odd size ≥ the input size).
    """

    def __init__(self, in_channels: int, out_channels: int, data_dim: int = 2, order: int = 4,
                 init_sigma: float = 1.0, truncation: float = 2.0, bias: bool = True, stride: int = 1):
        super().__init__()
        if data_dim not in (1, 2):
            raise ValueError(f"NJetConv: data_dim must be 1 or 2, got {data_dim!r}")
        if not isinstance(order, int) or order < 0:
            raise ValueError(f"NJetConv: order must be a non-negative int, got {order!r}")
        if not init_sigma > 0 or not truncation > 0:
            raise ValueError(f"NJetConv: init_sigma and truncation must be positive, got {init_sigma}, {truncation}")
        self.in_channels, self.out_channels, self.data_dim = in_channels, out_channels, data_dim
        self.order, self.truncation, self.stride = order, truncation, stride
        self.orders = basis_orders(data_dim, order)
        self.log_sigma = nn.Parameter(torch.tensor(math.log(init_sigma)))
        self.scale = 1.0      # multiplies σ after a resolution change (see retarget_njets)
        self.alpha = nn.Parameter(torch.empty(out_channels, in_channels, len(self.orders)))
        nn.init.kaiming_uniform_(self.alpha, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def get_extra_state(self) -> dict:
        """`scale` is saved with the weights, so a model retargeted to another resolution loads as it was."""
        return {"scale": float(self.scale)}

    def set_extra_state(self, state) -> None:
        scale = state.get("scale") if isinstance(state, dict) else None
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"NJetConv.load_state_dict: scale must be a finite positive number, got {scale!r}")
        self.scale = float(scale)

    @property
    def sigma(self) -> torch.Tensor:
        """σ in pixels: the learned scale times `scale`."""
        return self.log_sigma.exp() * self.scale

    def kernel_size(self) -> int:
        return njet_kernel_size(self.sigma.item(), self.truncation)

    def basis(self, size: int) -> torch.Tensor:
        """The basis on a centred grid of `size` pixels per dim: (num_basis, *(size,) * data_dim)."""
        x = torch.arange(size, device=self.alpha.device, dtype=self.alpha.dtype) - (size - 1) / 2
        g = scale_normalized_derivatives(x, self.sigma, self.order)
        if self.data_dim == 1:
            return g
        return torch.stack([g[n][:, None] * g[m][None, :] for n, m in self.orders])

    def sample_kernel(self, size: int | None = None) -> torch.Tensor:
        """(out, in, *(k,) * data_dim) with k = `size` or the σ-tied size."""
        basis = self.basis(size or self.kernel_size())
        return torch.einsum("oib,b...->oi...", self.alpha, basis)

    # -- the kernel size as a crop (flexlib.layers.crops): read with a model's other crops, bucketed when compiled --
    causal = False
    has_crop = True

    def full_kernel_size(self, input_size) -> tuple[int, ...]:
        """The largest kernel an input of spatial size `input_size` gets: the odd size ≥ its largest side."""
        largest = max(int(n) for n in input_size)
        return (largest if largest % 2 == 1 else largest + 1,) * self.data_dim

    def crop_parameters(self) -> list[torch.Tensor]:
        return [self.sigma.detach().reshape(1)]

    def crop_from(self, values, full) -> list[tuple[int, int]]:
        """The σ-tied size (capped at `full`) as a centred range of the `full`-point grid."""
        half = min(njet_kernel_size(values[0], self.truncation), full[0]) // 2
        return [(k // 2 - half, k // 2 + half + 1) for k in full]

    def kernel_on_crop(self, full, crop) -> torch.Tensor:
        """The kernel for a crop read by flexlib.layers.crops: exact ranges, or a compiled crop (the kernel sampled
        on its box times it: zero outside the exact size)."""
        if isinstance(crop, torch.Tensor):
            return self.sample_kernel(crop.shape[-1]) * crop
        return self.sample_kernel(crop[0][1] - crop[0][0])

    def forward(self, x: torch.Tensor, kernel=None) -> torch.Tensor:
        """`kernel`: a flexlib.layers.fused.SampledKernel the model computed for this input (its σ read with the
        model's other crops)."""
        if x.dim() != self.data_dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"NJetConv: expected input (B, {self.in_channels}, {', '.join('*' * self.data_dim)}), "
                             f"got shape {tuple(x.shape)}")
        if kernel is not None:
            weight = kernel.weight
        elif torch.compiler.is_compiling():
            full = self.full_kernel_size(x.shape[2:])
            weight = self.kernel_on_crop(full, read_crops([self], [full], compiled=True)[0])   # the graph break
        else:
            largest = max(x.shape[2:])
            weight = self.sample_kernel(min(self.kernel_size(), largest if largest % 2 == 1 else largest + 1))
        conv = F.conv1d if self.data_dim == 1 else F.conv2d
        return conv(x, weight, self.bias, stride=self.stride, padding=weight.shape[-1] // 2)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, data_dim={self.data_dim}, order={self.order}, "
                f"sigma={self.sigma.item():.3g}, stride={self.stride}")


def retarget_njets(model: nn.Module, source_res, target_res) -> int:
    """Run the N-Jet layers of a model trained at `source_res` pixels at `target_res`: σ (in pixels) is multiplied
    by target/source, so each kernel covers the same part of the image (the authors' run_crossres.py sets the SRF
    layers' `scale_sigma = target / source`). Returns the number of layers changed."""
    layers = [m for m in model.modules() if isinstance(m, NJetConv)]
    for layer in layers:
        layer.scale *= float(target_res) / float(source_res)
    return len(layers)
