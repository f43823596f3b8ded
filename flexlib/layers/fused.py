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

from .crops import box_ranges, read_crops, recompile_bound
from .flexconv import FlexConv
from .grids import coordinates
from .kernelnets import MFN, SIREN, FourierFilter, GaborFilter
from .mask import gaussian_mask
from .stacking import contiguous_strides, stack, views


class SampledKernel(NamedTuple):
    """A FlexConv's kernel for one input size: the cropped weight (out, in, *crop), resolution factor included, and
    the uncropped size it was cropped from (the k of f_Nyq(k), eq. 24)."""
    weight: torch.Tensor
    full_size: tuple[int, ...]


def fusable(module: nn.Module) -> bool:
    """A FlexConv whose kernel `fused_kernels` can compute: not frozen, and without a `kernel_for` of its own."""
    return isinstance(module, FlexConv) and not module.frozen and type(module).kernel_for is FlexConv.kernel_for


def served(module: nn.Module) -> bool:
    """A layer `model_kernels` computes the kernel of: a fusable FlexConv, or another layer with a learned kernel
    size that can sample its kernel for a crop (`kernel_on_crop`, flexlib.layers.crops; e.g. the N-Jet layer)."""
    return fusable(module) or (not isinstance(module, FlexConv) and hasattr(module, "kernel_on_crop"))


def _layers(model: nn.Module, input_size) -> tuple[list[nn.Module], list[tuple[int, ...]]]:
    """The served layers of `model` and the input size of each: `input_size` for all, or {layer: size}."""
    if isinstance(input_size, dict):
        layers = [m for m in model.modules() if served(m) and m in input_size]
        return layers, [tuple(int(n) for n in input_size[m]) for m in layers]
    layers = [m for m in model.modules() if served(m)]
    return layers, [tuple(int(n) for n in input_size)] * len(layers)


def model_crops(model: nn.Module, input_size, compiled: bool = False) -> list:
    """The crops of `model`'s served layers for inputs of spatial size `input_size` (or {layer: size}), read from
    the device in one transfer (flexlib.layers.crops.read_crops). A model calls it at the top of its forward with
    `compiled=torch.compiler.is_compiling()` and hands the result to `model_kernels`: under torch.compile this read
    is the forward's one graph break, and everything after it one graph."""
    layers, sizes = _layers(model, input_size)
    return read_crops(layers, [layer.full_kernel_size(size) for layer, size in zip(layers, sizes)], compiled)


def model_recompile_bound(model: nn.Module, input_size) -> int:
    """How many crop configurations `model` compiled can meet at this input size from its crops now
    (flexlib.layers.crops.recompile_bound): each one compiles its forward (and backward) once per mode."""
    layers, sizes = _layers(model, input_size)
    fulls = [layer.full_kernel_size(size) for layer, size in zip(layers, sizes)]
    return recompile_bound(layers, fulls, read_crops(layers, fulls))


def model_kernels(model: nn.Module, input_size, crops: list | None = None) -> dict[nn.Module, SampledKernel]:
    """The kernel of every served layer in `model` (every fusable FlexConv, the N-Jet layers) for inputs of spatial
    size `input_size` (or {layer: size}), the FlexConvs' computed together; `crops`: `model_crops(model,
    input_size, ...)` if already read. Hand each to its layer with `call`; a layer that sees another input size
    must compute its own."""
    layers, sizes = _layers(model, input_size)
    return dict(zip(layers, fused_kernels(layers, sizes, crops))) if layers else {}


def call(conv: nn.Module, x: torch.Tensor, kernels: dict) -> torch.Tensor:
    """`conv(x)` with its kernel from `kernels` (`model_kernels`) when it has one there."""
    kernel = kernels.get(conv)
    return conv(x) if kernel is None else conv(x, kernel=kernel)


def fused_kernels(convs: Sequence[nn.Module], input_size, crops: list | None = None) -> list[SampledKernel]:
    """`SampledKernel(conv.kernel_for(input_size), conv.full_kernel_size(input_size))` for every conv, computed
    together; `input_size` is one size for all or a list with one per conv. `crops`: the convs' crops if already
    read (flexlib.layers.crops.read_crops): exact ranges, or the compiled crops under torch.compile (each kernel
    then sampled on its crop's box and zero outside the exact crop)."""
    sizes = list(input_size) if input_size and isinstance(input_size[0], (tuple, list)) else [input_size] * len(convs)
    fulls = [conv.full_kernel_size(tuple(int(n) for n in size)) for conv, size in zip(convs, sizes)]
    if crops is None:
        crops = read_crops(convs, fulls)
    out: list = [None] * len(convs)
    groups: dict = {}
    for i, conv in enumerate(convs):
        sig = _signature(conv.kernel_net) if fusable(conv) else None
        if sig is None:  # a kernel of its own: its own call, on the crop already read
            out[i] = SampledKernel(conv.kernel_on_crop(fulls[i], crops[i]), fulls[i])
            continue
        p = conv.kernel_net.output_linear.weight
        key = (sig, fulls[i], _mask_kind(conv), conv.kernel_net.output_linear.bias is None, p.device, p.dtype)
        groups.setdefault(key, []).append(i)
    for (_, full, *_, device, dtype), members in groups.items():
        weights = _group_kernels([convs[i] for i in members], full, [crops[i] for i in members], device, dtype)
        for i, weight in zip(members, weights):
            out[i] = SampledKernel(weight, full)
    return out


def _group_kernels(convs, full, crops, device, dtype) -> list[torch.Tensor]:
    """Kernels of layers whose kernel nets share a hidden shape and whose masks are of one kind.

    Ψ[m] = (W⁽ᴸ⁾_m h_m + b⁽ᴸ⁾_m) · w_gauss,m (eq. 4, eq. 1) for all M layers on the union box of their crops as one
    batched matmul, the output weights zero-padded to the widest layer's out·in rows; laid out (M, rows, N), so
    each layer's kernel (out, in, *crop) is one view. Compiled crops (tensors, or None for uncropped): each kernel
    is the slice of its crop's box, times the crop (zero outside the exact crop)."""
    compiled = any(c is None or isinstance(c, torch.Tensor) for c in crops)
    ranges = [crop_box(conv, full, crop) for conv, crop in zip(convs, crops)] if compiled else crops
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
    if compiled:
        return [conv.scaled(_sliced(values[m], conv, crop, r, union, box)) for m, (conv, crop, r)
                in enumerate(zip(convs, crops, ranges))]
    box_strides = contiguous_strides(box)
    layouts = []
    for m, (conv, crop) in enumerate(zip(convs, ranges)):
        offset = m * rows * n + sum((a - ua) * s for (a, _), (ua, _), s in zip(crop, union, box_strides))
        size = (conv.out_channels, conv.in_channels, *[b - a for a, b in crop])
        layouts.append((size, (conv.in_channels * n, n, *box_strides), offset))
    return [conv.scaled(kernel) for conv, kernel in zip(convs, views(values, layouts))]


def crop_box(conv: FlexConv, full, crop) -> list[tuple[int, int]]:
    """The ranges a compiled crop's kernel is sampled on (its box; the full grid for None)."""
    return [(0, k) for k in full] if crop is None else box_ranges(full, crop.shape, conv.causal)


def _sliced(values: torch.Tensor, conv: FlexConv, crop, ranges, union, box) -> torch.Tensor:
    """A layer's kernel (out, in, *its box) cut from its (rows, N) values on the union box, times its crop."""
    kernel = values[:conv.out_channels * conv.in_channels].reshape(conv.out_channels, conv.in_channels, *box)
    kernel = kernel[(slice(None), slice(None), *(slice(a - ua, b - ua) for (a, b), (ua, _) in zip(ranges, union)))]
    return kernel if crop is None else kernel * crop


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
