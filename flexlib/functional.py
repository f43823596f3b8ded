"""Pure convolution functions used by FlexConv: spatial or FFT, 'same' or causal, for D = 1, 2, 3."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

# FFT work per spectrum element is memory-bound; this factor converts its flop count into "spatial-equivalent"
# flops for the automatic choice (measured on CPU by benchmarks/bench_fft_vs_spatial.py).
FFT_COST_FACTOR = 4.0


def conv_nd(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """Cross-correlation of x (B, C_in, *n) with kernel (C_out, C_in, *k), output (B, C_out, *n).

    causal (1-D only): the last kernel element multiplies the current step; the input is padded on the left.
    Otherwise 'same' padding with an odd kernel centred on each output position."""
    if causal:
        x = F.pad(x, (kernel.shape[-1] - 1, 0))
        return _CONV[1](x, kernel, bias)
    return _CONV[kernel.dim() - 2](x, kernel, bias, padding=[k // 2 for k in kernel.shape[2:]])


def fft_conv_nd(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """The same operation as `conv_nd`, computed with real FFTs (torch.fft): pad the input as the spatial conv
    would, take the linear (non-circular) cross-correlation over n + k - 1 points per dim, keep the first n."""
    dims = kernel.dim() - 2
    n = x.shape[2:]
    k = kernel.shape[2:]
    if causal:
        x = F.pad(x, (k[0] - 1, 0))
    else:
        pad = []
        for kd in reversed(k):
            pad += [kd // 2, kd // 2]
        x = F.pad(x, pad)
    size = [nd + kd - 1 for nd, kd in zip(n, k)]
    axes = tuple(range(-dims, 0))
    x_f = torch.fft.rfftn(x, s=size, dim=axes)
    k_f = torch.fft.rfftn(kernel, s=size, dim=axes)
    # cross-correlation = convolution with the conjugate spectrum; contract channels per frequency
    y_f = torch.einsum("bi...,oi...->bo...", x_f, k_f.conj())
    y = torch.fft.irfftn(y_f, s=size, dim=axes)
    y = y[(..., *[slice(0, nd) for nd in n])]
    if bias is not None:
        y = y + bias.view(1, -1, *[1] * dims)
    return y


def prefer_fft(batch: int, in_channels: int, out_channels: int, input_size, kernel_size) -> bool:
    """Cost model for the automatic choice. Direct convolution: B·C_in·C_out·Πn·Πk multiply-adds. FFT path:
    transforms of the B·C_in inputs, B·C_out outputs and C_in·C_out kernels over M = Π(n+k-1) points
    (~2.5·M·log₂M each), plus the complex channel contraction over the M/2 half-spectrum (4 real
    multiply-adds each); weighted by FFT_COST_FACTOR for its poorer arithmetic efficiency."""
    n = math.prod(input_size)
    k = math.prod(kernel_size)
    m = math.prod(nd + kd - 1 for nd, kd in zip(input_size, kernel_size))
    spatial = batch * in_channels * out_channels * n * k
    transforms = 2.5 * (batch * (in_channels + out_channels) + in_channels * out_channels) * m * max(math.log2(m), 1.0)
    contraction = 2.0 * batch * in_channels * out_channels * m
    return FFT_COST_FACTOR * (transforms + contraction) < spatial
