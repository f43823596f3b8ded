"""All the kernels of a model's FlexConvs in a few batched calls, with one read of their crops from the device.

A FlexConv alone samples its own kernel (FlexConv.kernel_for): its mask's support is read back to the host to
crop the grid (a device sync per layer) and its kernel net runs as a few dozen small operations. A model whose
FlexConvs all see inputs of one spatial size (FlexNet, the TCNs) calls `prepare_kernels` before its layers run:
the supports of all masks are read in one transfer, the kernel nets of one hidden shape run as one batched
network on the union of their crops (flexlib.kernelnets.batched), the output linears and masks of the layers of
one width as batched matmuls, and each layer receives its kernel — the values its own path gives — for its next
forward. Parameters stay per layer.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .flexconv import FlexConv
from .grids import coordinates
from .kernelnets import batched as kb
from .mask import gaussian_mask, support_box, threshold_radius
from .stacked import contiguous_strides, stack, views


def prepare_kernels(model: nn.Module, input_size) -> list[FlexConv]:
    """Compute the kernels of every FlexConv in `model` for inputs of spatial size `input_size` together and
    hand each to its layer's next forward (a layer that then sees another size computes its own). Frozen layers
    and subclasses with their own `kernel_for` are left to themselves. Returns the layers served; pass them to
    `release_kernels` once the forward is done."""
    input_size = tuple(int(n) for n in input_size)
    convs = [m for m in model.modules()
             if isinstance(m, FlexConv) and not m.frozen and type(m).kernel_for is FlexConv.kernel_for]
    for conv, (kernel, size) in zip(convs, batched_kernels(convs, input_size)):
        conv.use_kernel_once(input_size, kernel, size)
    return convs


def release_kernels(convs: list[FlexConv]) -> None:
    """Drop the kernels that `prepare_kernels` handed out and no forward used."""
    for conv in convs:
        conv._pending = None


def batched_kernels(convs: list[FlexConv], input_size) -> list[tuple[torch.Tensor, tuple[int, ...]]]:
    """(conv.kernel_for(input_size), its uncropped size) for every conv, computed together."""
    fulls = [conv.full_kernel_size(input_size) for conv in convs]
    ranges = crop_ranges(convs, fulls)
    out: list = [None] * len(convs)
    groups: dict = {}
    for i, conv in enumerate(convs):
        sig = kb.signature(conv.kernel_net)
        if sig is None:  # a kernel net of its own: its own call, on the crop already read
            device, dtype = conv._device_dtype()
            kernel = conv.kernel_at(coordinates(fulls[i], ranges[i], device, dtype), [b - a for a, b in ranges[i]])
            out[i] = (_scaled(conv, kernel), fulls[i])
            continue
        p = conv.kernel_net.output_linear.weight
        key = (sig, fulls[i], _mask_kind(conv), conv.kernel_net.output_linear.bias is None, p.device, p.dtype)
        groups.setdefault(key, []).append(i)
    for (_, full, *_, device, dtype), members in groups.items():
        kernels = _group_kernels([convs[i] for i in members], full, [ranges[i] for i in members], device, dtype)
        for i, kernel in zip(members, kernels):
            out[i] = (kernel, full)
    return out


def _group_kernels(convs, full, ranges, device, dtype) -> list[torch.Tensor]:
    """Kernels of layers whose kernel nets share a hidden shape and whose masks are of one kind.

    Ψ[m] = (W⁽ᴸ⁾_m h_m + b⁽ᴸ⁾_m) · w_gauss,m (eq. 4, eq. 1) for all M layers on the union box of their crops as one
    batched matmul, the output weights zero-padded to the widest layer's out·in rows; laid out (M, rows, N), so
    each layer's kernel (out, in, *crop) is one view."""
    union = [(min(r[d][0] for r in ranges), max(r[d][1] for r in ranges)) for d in range(len(full))]
    box = [b - a for a, b in union]
    n = math.prod(box)
    coords = coordinates(full, union, device, dtype)
    h = kb.hidden([conv.kernel_net for conv in convs], coords)                      # (M, N, H)
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
    return [_scaled(conv, kernel) for conv, kernel in zip(convs, views(values, layouts))]


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


def _scaled(conv: FlexConv, kernel: torch.Tensor) -> torch.Tensor:
    return kernel * conv.sampling_rate_norm if conv.sampling_rate_norm != 1.0 else kernel


@torch.no_grad()
def crop_ranges(convs: list[FlexConv], kernel_sizes) -> list[list[tuple[int, int]]]:
    """FlexConv.crop_ranges of every conv, the masks' supports computed together and read from the device in
    one transfer (one per device)."""
    groups: dict = {}
    for i, conv in enumerate(convs):
        if conv.mask is not None and conv.crop_threshold is not None:
            m = conv.mask
            key = (m.data_dim, m.theta is not None, conv.crop_threshold, m.eps, m.mean_param.device,
                   m.mean_param.dtype)
            groups.setdefault(key, []).append(i)
    boxes: dict = {}
    for (_, rotated, threshold, eps, device, _), members in groups.items():
        masks = [convs[i].mask for i in members]
        theta = torch.stack([m.theta for m in masks]) if rotated else None
        low, high = support_box(torch.stack([m.mean_param for m in masks]), torch.stack([m.sigma_param for m in masks]),
                                threshold_radius(threshold), theta, eps)
        boxes.setdefault(device, []).append((members, torch.stack([low, high], dim=1)))
    supports: dict = {}
    for items in boxes.values():
        values = torch.cat([box.flatten() for _, box in items]).tolist()  # the one device-to-host read
        at = 0
        for members, box in items:
            d = box.shape[-1]
            for i in members:
                supports[i] = (values[at:at + d], values[at + d:at + 2 * d])
                at += 2 * d
    return [conv.crop_ranges(size, supports.get(i)) if i in supports else [(0, k) for k in size]
            for i, (conv, size) in enumerate(zip(convs, kernel_sizes))]
