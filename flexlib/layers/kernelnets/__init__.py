"""Kernel networks MLP^ψ: coordinates (N, D) in [-1, 1]^D → kernel values (N, out_features)."""
from __future__ import annotations

from torch import nn

from .filters import FourierFilter, GaborFilter
from .mfn import MFN, FourierMFN, GaborMFN, MAGNet
from .siren import SIREN

KERNEL_NETS = {"magnet": MAGNet, "gabor": GaborMFN, "fourier": FourierMFN, "siren": SIREN}


def build_kernel_net(name: str, data_dim: int, out_features: int, **kwargs) -> nn.Module:
    """Build a kernel network by name: one of "magnet", "gabor", "fourier", "siren"."""
    if name not in KERNEL_NETS:
        raise ValueError(f"unknown kernel_net {name!r}; available: {sorted(KERNEL_NETS)}")
    return KERNEL_NETS[name](data_dim, out_features, **kwargs)


__all__ = ["MFN", "MAGNet", "GaborMFN", "FourierMFN", "SIREN", "GaborFilter", "FourierFilter", "KERNEL_NETS",
           "build_kernel_net"]
