"""The hidden features of many kernel networks of one shape, evaluated together (used by flexlib.batched).

`hidden(nets, coords)` gives, for M networks of identical hidden structure, their last hidden layer at the same
coordinates as one (M, N, N_hid) tensor: eq. 2–3 (MFN; Gabor filters eq. 5/7, Fourier filters) or the SIREN
layers, with every filter of every network computed in one broadcast operation and the hidden linears as
batched matmuls. The parameters stay per network (flexlib.stacked gathers them).
"""
from __future__ import annotations

import torch
from torch import nn

from ..stacked import stack
from .filters import FourierFilter, GaborFilter
from .mfn import MFN
from .siren import SIREN


def signature(net: nn.Module):
    """Nets with equal signatures share `hidden`; None for nets it does not support."""
    if isinstance(net, MFN) and type(net).forward is MFN.forward:
        kinds = {type(f) for f in net.filters}
        if len(kinds) != 1 or not kinds <= {GaborFilter, FourierFilter}:
            return None
        first = net.filters[0]
        gamma = tuple(first.gamma.shape) if isinstance(first, GaborFilter) else None
        return ("mfn", kinds.pop(), net.data_dim, len(net.filters), tuple(first.linear.weight.shape), gamma)
    if isinstance(net, SIREN) and type(net).forward is SIREN.forward:
        return ("siren", net.data_dim, net.omega_0, tuple(tuple(l.weight.shape) for l in net.hidden))
    return None


def hidden(nets: list[nn.Module], coords: torch.Tensor) -> torch.Tensor:
    """The input of the output linear of every net in `nets` (equal `signature`s) at `coords` (N, D):
    (M, N, N_hid)."""
    if isinstance(nets[0], SIREN):
        return _siren_hidden(nets, coords)
    return _mfn_hidden(nets, coords)


def _mfn_hidden(nets: list[MFN], coords: torch.Tensor) -> torch.Tensor:
    """h⁽¹⁾ = g⁽¹⁾(x), h⁽ˡ⁾ = (W⁽ˡ⁾ h⁽ˡ⁻¹⁾ + b⁽ˡ⁾) · g⁽ˡ⁾(x) (eq. 2–3) for M nets of L filters at once."""
    m, n_filters = len(nets), len(nets[0].filters)
    filters = [f for l in range(n_filters) for f in (net.filters[l] for net in nets)]   # filter-major
    hid, dim = filters[0].linear.weight.shape
    w = stack([f.linear.weight for f in filters], view=(-1, hid, dim)).transpose(1, 2)  # (L·M, D, H)
    b = stack([f.linear.bias for f in filters], view=(-1, 1, hid))
    g = torch.sin(torch.baddbmm(b, coords.expand(len(filters), *coords.shape), w))     # (L·M, N, H)
    if isinstance(filters[0], GaborFilter):                     # eq. 5 / 7: × exp(-½ Σ_d (γ_d (x_d - μ_d))²)
        gamma = stack([f.gamma for f in filters], view=(len(filters), 1, hid, -1))
        mu = stack([f.mu for f in filters], view=(len(filters), 1, hid, dim))
        t = gamma * (coords[:, None, :] - mu)
        g = torch.exp(-0.5 * (t * t).sum(dim=-1)) * g
    g = g.view(n_filters, m, -1, hid).unbind(0)
    h = g[0]
    if n_filters > 1:
        linears = [lin for l in range(n_filters - 1) for lin in (net.linears[l] for net in nets)]
        wl = stack([lin.weight for lin in linears], view=(n_filters - 1, m, hid, hid)).transpose(2, 3).unbind(0)
        bl = stack([lin.bias for lin in linears], view=(n_filters - 1, m, 1, hid)).unbind(0)
        for layer in range(n_filters - 1):
            h = torch.baddbmm(bl[layer], h, wl[layer]) * g[layer + 1]
    return h


def _siren_hidden(nets: list[SIREN], coords: torch.Tensor) -> torch.Tensor:
    """h⁽ˡ⁾ = sin(ω₀ (W⁽ˡ⁾ h⁽ˡ⁻¹⁾ + b⁽ˡ⁾)) for M SIRENs at once."""
    omega = nets[0].omega_0
    h = coords.expand(len(nets), *coords.shape)
    for i in range(len(nets[0].hidden)):
        w = stack([net.hidden[i].weight for net in nets]).transpose(1, 2)           # (M, D or H, H)
        b = stack([net.hidden[i].bias for net in nets], view=(len(nets), 1, -1))
        h = torch.sin(omega * torch.baddbmm(b, h, w))
    return h
