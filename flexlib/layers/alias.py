"""Analytic maximum frequency of MAGNet/FlexConv kernels and the alias-free regularizer (§3.3, App. A).

Frequencies are in cycles per unit of the kernel coordinate, which spans [-1, 1].

Reading of the paper taken here: eq. 10–16 write max_j W_g,ij / 2π; a sine's frequency is |W|, so we use
|W_g,ij| (and |γ|, as γ enters the envelope squared). The official code departs from the paper in the
envelope term (max γ broadcast over units) and the mask term (1/min σ); we follow the paper (eq. 16, 22).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .kernelnets import MFN, FourierFilter, GaborFilter

SIGMA_CUT = 2.0    # σ_cut: two standard deviations (App. A.1)
ALIAS_LAMBDA = 0.1  # λ weighting L_HF in the loss (App. A.2)
METHODS = ("together", "summed")


def nyquist_frequency(k):
    """Eq. 24: f_Nyq(k) = (k - 1) / 4 for a kernel of k samples over [-1, 1]."""
    return (k - 1) / 4


def filter_max_frequencies(filt: nn.Module, sigma_cut: float = SIGMA_CUT) -> torch.Tensor:
    """Eq. 16 per unit i: f⁺_Gabor,i = max_j |W_g,ij| / 2π + σ_cut · min_d |γ_i,d| / 2π.

    A Fourier filter (no envelope) contributes only the sine term (eq. 11)."""
    f_sin = filt.linear.weight.abs().amax(dim=1) / (2 * math.pi)  # eq. 11
    if isinstance(filt, FourierFilter):
        return f_sin
    if not isinstance(filt, GaborFilter):
        raise TypeError(f"no analytic frequency for filter type {type(filt).__name__}")
    f_env = sigma_cut * filt.gamma.abs().amin(dim=1) / (2 * math.pi)  # eq. 15
    return f_sin + f_env


def magnet_layer_frequencies(kernel_net: nn.Module, sigma_cut: float = SIGMA_CUT) -> torch.Tensor:
    """max_i f⁺_Gabor,i at each filter layer l (the terms of eq. 20), shape (L,)."""
    if not isinstance(kernel_net, MFN):
        raise TypeError(f"the analytic maximum frequency needs a multiplicative filter network (MAGNet, GaborMFN, "
                        f"FourierMFN), got {type(kernel_net).__name__}; a SIREN's spectrum has no closed form")
    return torch.stack([filter_max_frequencies(f, sigma_cut).max() for f in kernel_net.filters])


def magnet_max_frequency(kernel_net: nn.Module, sigma_cut: float = SIGMA_CUT) -> torch.Tensor:
    """Eq. 21: f⁺_MAGNet = Σ_l max_i f⁺_Gabor,i^(l)."""
    return magnet_layer_frequencies(kernel_net, sigma_cut).sum()


def mask_max_frequency(mask: nn.Module, sigma_cut: float = SIGMA_CUT) -> torch.Tensor:
    """The mask term of eq. 22: f⁺_w_gauss = σ_cut / (2π · max_d σ_d)."""
    return sigma_cut / (2 * math.pi * mask.sigma.max())


def flexconv_max_frequency(conv: nn.Module, sigma_cut: float = SIGMA_CUT, include_mask: bool = True) -> torch.Tensor:
    """Eq. 22: f⁺_FlexConv = f⁺_MAGNet + f⁺_w_gauss (the mask term only if the conv has a mask)."""
    f = magnet_max_frequency(conv.kernel_net, sigma_cut)
    if include_mask and getattr(conv, "mask", None) is not None:
        f = f + mask_max_frequency(conv.mask, sigma_cut)
    return f


def _excess_sq(f: torch.Tensor, limit: float) -> torch.Tensor:
    """‖max{f, limit} - limit‖²."""
    return (torch.clamp(f, min=limit) - limit) ** 2


def conv_alias_loss(conv: nn.Module, method: str = "together", include_mask: bool = False,
                    sigma_cut: float = SIGMA_CUT) -> torch.Tensor:
    """L_HF of one FlexConv: eq. 25 ("summed") or eq. 26–27 ("together": each of the L layers against
    f_Nyq/L, with the mask term spread as f_env/L)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if conv.last_kernel_size is None:
        raise RuntimeError(f"{type(conv).__name__} has no kernel size yet: run a forward pass before alias_loss, "
                           f"so that f_Nyq(k) uses the input's kernel size")
    f_nyq = nyquist_frequency(min(conv.last_kernel_size))
    use_mask = include_mask and getattr(conv, "mask", None) is not None
    f_mask = mask_max_frequency(conv.mask, sigma_cut) if use_mask else 0.0
    if method == "summed":
        return _excess_sq(magnet_max_frequency(conv.kernel_net, sigma_cut) + f_mask, f_nyq)
    layers = magnet_layer_frequencies(conv.kernel_net, sigma_cut)
    n = len(layers)
    return _excess_sq(layers + f_mask / n, f_nyq / n).sum()


def alias_loss(model: nn.Module, method: str = "together", include_mask: bool = False,
               sigma_cut: float = SIGMA_CUT) -> torch.Tensor:
    """L_HF summed over every FlexConv/CKConv of `model` (multiply by λ = ALIAS_LAMBDA in the loss).

    include_mask=False regularizes f⁺_MAGNet (the paper's default, Table 4 "w/ reg. f⁺_MAGNet");
    include_mask=True regularizes f⁺_FlexConv."""
    from .flexconv import FlexConv
    convs = [m for m in model.modules() if isinstance(m, FlexConv)]
    if not convs:
        raise ValueError("alias_loss: the model has no FlexConv or CKConv layer")
    return torch.stack([conv_alias_loss(c, method, include_mask, sigma_cut) for c in convs]).sum()
