"""All the kernels of a model's FlexConvs in a few batched calls, with one read of their crops from the device.

A FlexConv alone samples its own kernel (FlexConv.kernel_for): its mask is read back to the host to crop the grid
(a device sync per layer) and its kernel net runs as a few dozen small operations. A model whose FlexConvs all see
inputs of one spatial size (FlexNet, the TCNs) asks for all its kernels at once, before its layers run:

    kernels = model_kernels(self, x.shape[2:])        # {FlexConv: SampledKernel}
    y = call(self.conv1, x, kernels)                  # conv1(x, kernel=kernels[conv1]), or conv1(x) if not served

`fused_kernels` reads the masks of all layers in one transfer, runs the kernel nets of one hidden shape as one
batched network on the union of their crops, and the output linears and masks of the layers of one width as
batched matmuls; each layer's kernel has the values its own path gives. Parameters stay per layer
(flexlib.layers.stacking gathers them with backwards of one operation per tensor).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import nn

from .flexconv import FlexConv
from .grids import coordinates
from .kernelnets import MFN, SIREN, FourierFilter, GaborFilter
from .mask import gaussian_mask, support_interval
from .stacking import contiguous_strides, stack, views


class SampledKernel(NamedTuple):
    """A FlexConv's kernel for one input size: the cropped weight (out, in, *crop), resolution factor included, and
    the uncropped size it was cropped from (the k of f_Nyq(k), eq. 24)."""
    weight: torch.Tensor
    full_size: tuple[int, ...]


def fusable(module: nn.Module) -> bool:
    """A FlexConv whose kernel `fused_kernels` can compute: not frozen, and without a `kernel_for` of its own."""
    return isinstance(module, FlexConv) and not module.frozen and type(module).kernel_for is FlexConv.kernel_for


def model_kernels(model: nn.Module, input_size) -> dict[FlexConv, SampledKernel]:
    """The kernel of every fusable FlexConv in `model` for inputs of spatial size `input_size`, computed together.
    Hand each to its layer with `call`; a layer that sees another input size must compute its own."""
    convs = [m for m in model.modules() if fusable(m)]
    return dict(zip(convs, fused_kernels(convs, input_size))) if convs else {}


def call(conv: nn.Module, x: torch.Tensor, kernels: dict) -> torch.Tensor:
    """`conv(x)` with its kernel from `kernels` (`model_kernels`) when it has one there."""
    kernel = kernels.get(conv)
    return conv(x) if kernel is None else conv(x, kernel=kernel)


def fused_kernels(convs: Sequence[FlexConv], input_size) -> list[SampledKernel]:
    """`SampledKernel(conv.kernel_for(input_size), conv.full_kernel_size(input_size))` for every conv, computed
    together."""
    input_size = tuple(int(n) for n in input_size)
    fulls = [conv.full_kernel_size(input_size) for conv in convs]
    ranges = crop_ranges(convs, fulls)
    out: list = [None] * len(convs)
    groups: dict = {}
    for i, conv in enumerate(convs):
        sig = _signature(conv.kernel_net)
        if sig is None:  # a kernel net of its own: its own call, on the crop already read
            device, dtype = conv.device_dtype()
            weight = conv.kernel_at(coordinates(fulls[i], ranges[i], device, dtype), [b - a for a, b in ranges[i]])
            out[i] = SampledKernel(conv.scaled(weight), fulls[i])
            continue
        p = conv.kernel_net.output_linear.weight
        key = (sig, fulls[i], _mask_kind(conv), conv.kernel_net.output_linear.bias is None, p.device, p.dtype)
        groups.setdefault(key, []).append(i)
    for (_, full, *_, device, dtype), members in groups.items():
        weights = _group_kernels([convs[i] for i in members], full, [ranges[i] for i in members], device, dtype)
        for i, weight in zip(members, weights):
            out[i] = SampledKernel(weight, full)
    return out


@torch.no_grad()
def crop_ranges(convs: Sequence[FlexConv], kernel_sizes) -> list[list[tuple[int, int]]]:
    """FlexConv.crop_ranges of every conv, the masks' parameters read from the device in one transfer (per
    device)."""
    cropped = [i for i, conv in enumerate(convs) if conv.mask is not None and conv.crop_threshold is not None]
    by_device: dict = {}
    for i in cropped:
        by_device.setdefault(convs[i].mask.mean_param.device, []).append(i)
    supports = {}
    for members in by_device.values():
        masks = [convs[i].mask for i in members]
        values = torch.cat([t for m in masks for t in m.raw_parameters()]).tolist()   # the one read
        at = 0
        for i, mask in zip(members, masks):
            d, rotated = mask.data_dim, mask.theta is not None
            mean, sigma = values[at:at + d], values[at + d:at + 2 * d]
            theta = values[at + 2 * d] if rotated else None
            at += 2 * d + rotated
            supports[i] = support_interval(mean, sigma, convs[i].crop_threshold, theta, mask.eps)
    return [conv.crop_ranges(size, supports[i]) if i in supports else [(0, k) for k in size]
            for i, (conv, size) in enumerate(zip(convs, kernel_sizes))]


def _group_kernels(convs, full, ranges, device, dtype) -> list[torch.Tensor]:
    """Kernels of layers whose kernel nets share a hidden shape and whose masks are of one kind.

    Ψ[m] = (W⁽ᴸ⁾_m h_m + b⁽ᴸ⁾_m) · w_gauss,m (eq. 4, eq. 1) for all M layers on the union box of their crops as one
    batched matmul, the output weights zero-padded to the widest layer's out·in rows; laid out (M, rows, N), so
    each layer's kernel (out, in, *crop) is one view."""
    union = [(min(r[d][0] for r in ranges), max(r[d][1] for r in ranges)) for d in range(len(full))]
    box = [b - a for a, b in union]
    n = math.prod(box)
    coords = coordinates(full, union, device, dtype)
    h = _hidden([conv.kernel_net for conv in convs], coords)                        # (M, N, H)
    linears = [conv.kernel_net.output_linear for conv in convs]
    rows = max(lin.weight.shape[0] for lin in linears)
    w = stack([lin.weight for lin in linears], rows)                                # (M, rows, H)
    if linears[0].bias is None:
        values = torch.bmm(w, h.transpose(1, 2))
    else:
        values = torch.baddbmm(stack([lin.bias for lin in linears], rows, view=(len(convs), rows, 1)), w,
                               h.transpose(1, 2))                                   # (M, rows, N)
    mask = _masks(convs, coords)
    if mask is not None:
        values = values * mask.unsqueeze(1)
    box_strides = contiguous_strides(box)
    layouts = []
    for m, (conv, crop) in enumerate(zip(convs, ranges)):
        offset = m * rows * n + sum((a - ua) * s for (a, _), (ua, _), s in zip(crop, union, box_strides))
        size = (conv.out_channels, conv.in_channels, *[b - a for a, b in crop])
        layouts.append((size, (conv.in_channels * n, n, *box_strides), offset))
    return [conv.scaled(kernel) for conv, kernel in zip(convs, views(values, layouts))]


def _mask_kind(conv: FlexConv) -> tuple:
    """Layers batch together when their masks are of one kind and share their ε."""
    if conv.mask is None:
        return ("none",)
    return ("rotated" if conv.mask.theta is not None else "plain", conv.mask.eps)


def _masks(convs: list[FlexConv], coords: torch.Tensor) -> torch.Tensor | None:
    """w_gauss (eq. 1) of every layer at coords: (M, N), or None without masks."""
    kind = _mask_kind(convs[0])
    if kind[0] == "none":
        return None
    if kind[0] == "rotated":
        return torch.stack([conv.mask(coords) for conv in convs])
    m, dim = len(convs), coords.shape[-1]
    mean = stack([conv.mask.mean_param for conv in convs], view=(m, 1, dim))
    sigma = stack([conv.mask.sigma_param for conv in convs], view=(m, 1, dim))
    return gaussian_mask(coords, mean, sigma, kind[1])


# -- the hidden features of many kernel networks of one shape ----------------------------------------------------
def _signature(net: nn.Module):
    """Nets with equal signatures are evaluated together by `_hidden`; None for nets it does not support."""
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


def _hidden(nets: list[nn.Module], coords: torch.Tensor) -> torch.Tensor:
    """The input of the output linear of every net (equal `_signature`s) at `coords` (N, D): (M, N, N_hid)."""
    return _siren_hidden(nets, coords) if isinstance(nets[0], SIREN) else _mfn_hidden(nets, coords)


def _mfn_hidden(nets: list[MFN], coords: torch.Tensor) -> torch.Tensor:
    """h⁽¹⁾ = g⁽¹⁾(x), h⁽ˡ⁾ = (W⁽ˡ⁾ h⁽ˡ⁻¹⁾ + b⁽ˡ⁾) · g⁽ˡ⁾(x) (eq. 2–3) for M nets of L filters at once: every filter of
    every net in one broadcast operation, the hidden linears as batched matmuls."""
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
